"""Test stub, NOT pycuda: a fake current device named "Stub GPU", compute capability 8.7."""


class _Device:
    def name(self) -> str:
        return "Stub GPU"

    def compute_capability(self) -> tuple[int, int]:
        return (8, 7)


class Context:
    @staticmethod
    def get_device() -> _Device:
        return _Device()
