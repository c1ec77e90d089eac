# Test-only import stub, used solely in a subprocess by tests/test_edgetam.py: timm
# imports torchvision (for data transforms the EdgeTAM backbone never uses), and
# torchvision's registry wheels are CUDA builds that cannot import on CPU torch. The
# stub lets timm import so the real EdgeTAM model (RepViT backbone) runs; nothing it
# provides is called. Never on sys.path outside that subprocess.
import importlib.abc
import importlib.machinery
import sys
import types


class _Meta(type):
    def __getattr__(cls, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return _Meta(name, (_Dummy,), {})

class _Dummy(metaclass=_Meta):
    def __init__(self, *a, **k):
        pass

class _StubModule(types.ModuleType):
    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return _Meta(name, (_Dummy,), {})

class _Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, fullname, path, target=None):
        if fullname.startswith("torchvision."):
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        return None
    def create_module(self, spec):
        m = _StubModule(spec.name)
        m.__path__ = []
        return m
    def exec_module(self, module):
        pass

sys.meta_path.insert(0, _Finder())
__version__ = "0.0.0"
def __getattr__(name):
    if name.startswith("__"):
        raise AttributeError(name)
    return _Meta(name, (_Dummy,), {})
