"""Robot-side runtime: load a policy package and run it without PyTorch."""
