"""Hold hand-written TensorRT behaviour to NVIDIA's real Python API (the `tensorrt_bindings` wheels).

Only the binding module is real here: its classes, enums, `Dims`, `DataType`, `Logger` and `IProgressMonitor`
work without the engine libraries, but a `Builder`, `Runtime` or `OnnxParser` cannot be created. So those
three are replaced by fakes, each wrapped in a `Strict` object that stands for an instance of the real class:
every attribute the project reads must exist on that class in this TensorRT version, every property it sets
must be settable, and every call must bind to the method's real signature (read from the first line of its
pybind11 docstring, or each form of an "Overloaded function"), arity, keywords and argument types included.
What a fake returns is checked against the declared return type too, so a fake cannot hand back a tuple
where TensorRT returns `Dims`, or a numpy type where it returns `DataType`.
"""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Callable

USED: set[str] = set()  # "Class.member" for everything the project touched, for the report


@dataclass(frozen=True)
class Param:
    name: str
    annotation: str
    has_default: bool


def _split_top(text: str) -> list[str]:
    """Split on commas not inside brackets."""
    parts, depth, current = [], 0, ""
    for ch in text:
        if ch in "[(":
            depth += 1
        elif ch in "])":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    return [p.strip() for p in [*parts, current] if p.strip()]


def _parse_params(text: str) -> list[Param]:
    params = []
    for part in _split_top(text):
        head, _, default = part.partition("=")
        name, _, annotation = head.partition(":")
        params.append(Param(name.strip(), annotation.strip(), bool(default.strip())))
    return params


def signatures(doc: str | None, name: str) -> list[tuple[list[Param], str]]:
    """[(params, return annotation)] from a pybind11 docstring; several for an overloaded function."""
    lines = (doc or "").strip().splitlines()
    if not lines:
        raise ValueError(f"{name} has no docstring to read its signature from")
    pattern = re.compile(r"^(?:\d+\.\s+)?" + re.escape(name) + r"\((.*)\)\s*->\s*(.+)$")
    if lines[0].strip() == f"{name}(*args, **kwargs)":
        forms = [pattern.match(line.strip()) for line in lines if re.match(r"^\d+\.\s", line.strip())]
    else:
        forms = [pattern.match(lines[0].strip())]
    found = [(_parse_params(m.group(1)), m.group(2).strip()) for m in forms if m]
    if not found:
        raise ValueError(f"cannot read a signature for {name} from {lines[0]!r}")
    return found


def accessor_signature(doc: str | None) -> tuple[list[Param], str]:
    """A property getter/setter docstring: `(arg0: Owner[, arg1: T]) -> R`."""
    m = re.match(r"^\((.*)\)\s*->\s*(.+)$", (doc or "").strip().splitlines()[0] if doc else "")
    if not m:
        raise ValueError(f"cannot read an accessor signature from {doc!r}")
    return _parse_params(m.group(1)), m.group(2).strip()


class Strict:
    """An object standing for an instance of `real_cls`, whose behaviour comes from `impl`."""

    def __init__(self, api: "StrictApi", real_cls: type, impl: Any) -> None:
        object.__setattr__(self, "_api", api)
        object.__setattr__(self, "_real", real_cls)
        object.__setattr__(self, "_impl", impl)

    def __getattr__(self, name: str) -> Any:
        api, real, impl = self._api, self._real, self._impl
        if not hasattr(real, name):
            raise AttributeError(f"TensorRT {api.version}: {real.__name__} has no attribute {name!r}")
        USED.add(f"{real.__name__}.{name}")
        static = inspect.getattr_static(real, name)
        if isinstance(static, property):
            value = getattr(impl, name)
            api.check_value(value, accessor_signature(static.fget.__doc__)[1], f"{real.__name__}.{name}")
            return value
        forms = signatures(static.__doc__, name)
        method = getattr(impl, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            returns = api.check_call(f"{real.__name__}.{name}", forms, args, kwargs)
            result = method(*args, **kwargs)
            api.check_value(result, returns, f"{real.__name__}.{name}()", none_ok=True)
            return result

        return call

    def __setattr__(self, name: str, value: Any) -> None:
        real = self._real
        static = inspect.getattr_static(real, name, None)
        if not isinstance(static, property) or static.fset is None:
            raise AttributeError(f"TensorRT {self._api.version}: {real.__name__}.{name} is not a settable property")
        USED.add(f"{real.__name__}.{name}=")
        params, _ = accessor_signature(static.fset.__doc__)
        self._api.check_value(value, params[1].annotation, f"{real.__name__}.{name} = ...")
        setattr(self._impl, name, value)

    def __bytes__(self) -> bytes:  # IHostMemory exposes the buffer protocol
        if self._real.__name__ != "IHostMemory":
            raise TypeError(f"{self._real.__name__} is not a buffer")
        return bytes(self._impl)

    def __repr__(self) -> str:
        return f"<strict {self._real.__name__}>"


class StrictApi:
    """The real binding module with Builder/Runtime/OnnxParser made by fakes behind `Strict` wrappers."""

    def __init__(self, real: ModuleType, factories: dict[str, Callable[..., Any]]) -> None:
        self.real = real
        self.version = real.__version__
        self.module = ModuleType("tensorrt")
        self.module.__getattr__ = self._module_attr  # type: ignore[attr-defined]
        self.module.__version__ = real.__version__
        self._factories = factories

    def _module_attr(self, name: str) -> Any:
        if name in self._factories:
            real_cls = getattr(self.real, name)
            forms = signatures(real_cls.__init__.__doc__, "__init__")

            def construct(*args: Any, **kwargs: Any) -> Strict:
                self.check_call(f"{name}()", forms, (None, *args), kwargs, bound_self=True)
                USED.add(f"{name}()")
                return self.wrap(name, self._factories[name](*args, **kwargs))

            return construct
        value = getattr(self.real, name)  # AttributeError where this version lacks it
        USED.add(name)
        return value

    def wrap(self, class_name: str, impl: Any) -> Strict:
        return Strict(self, getattr(self.real, class_name), impl)

    def check_call(self, what: str, forms: list[tuple[list[Param], str]], args: tuple, kwargs: dict,
                   bound_self: bool = False) -> str:
        """Bind the call to one of the real forms (self excluded); returns that form's return annotation."""
        errors = []
        for params, returns in forms:
            rest = params[1:]  # self
            call_args = args[1:] if bound_self else args
            try:
                sig = inspect.Signature([inspect.Parameter(
                    p.name, inspect.Parameter.POSITIONAL_ONLY if re.fullmatch(r"arg\d+", p.name)
                    else inspect.Parameter.POSITIONAL_OR_KEYWORD,
                    default=None if p.has_default else inspect.Parameter.empty) for p in rest])
                bound = sig.bind(*call_args, **kwargs)
                for p in rest:
                    if p.name in bound.arguments:
                        self.check_value(bound.arguments[p.name], p.annotation, f"{what} argument {p.name!r}")
                return returns
            except TypeError as exc:
                errors.append(f"({', '.join(f'{p.name}: {p.annotation}' for p in rest)}): {exc}")
        raise TypeError(f"TensorRT {self.version}: {what} does not accept args={args!r} kwargs={kwargs!r}: "
                        + " | ".join(errors))

    def check_value(self, value: Any, annotation: str, what: str, none_ok: bool = False) -> None:
        """TypeError unless `value` fits the pybind11 annotation (classes, enums, ints, bools, str, buffers)."""
        if value is None and (none_ok or annotation == "None"):
            return
        ann = annotation.replace("tensorrt_bindings.tensorrt.", "").replace("tensorrt.", "")
        ok = True
        if ann in ("int", "typing.SupportsInt"):
            ok = isinstance(value, int) and not isinstance(value, bool) or hasattr(type(value), "__index__") \
                and not hasattr(type(value), "__members__")
        elif ann in ("bool",):
            ok = isinstance(value, bool)
        elif ann in ("float", "typing.SupportsFloat"):
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        elif ann == "str":
            ok = isinstance(value, str)
        elif ann in ("buffer", "typing_extensions.Buffer", "collections.abc.Buffer"):
            try:
                memoryview(value)
            except TypeError:
                ok = False
        elif re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", ann) and hasattr(self.real, ann) and isinstance(
                getattr(self.real, ann), type):
            cls = getattr(self.real, ann)
            ok = isinstance(value, cls) or (isinstance(value, Strict) and issubclass(value._real, cls))
        if not ok:
            raise TypeError(f"TensorRT {self.version}: {what} must be {annotation}, got {type(value).__name__} "
                            f"{value!r}")
