"""TorchScript files (``torch.jit.save`` of a scripted or traced model): loaded with ``torch.jit.load``, which reads
TorchScript code and tensors and runs no Python of the file's.

Gradient methods run on the loaded module as they are. CAM methods need a layer's output and its gradient, and a
loaded TorchScript module takes no hooks ("register_forward_hook is not supported on ScriptModules"). So the
module's graph is read instead (pytorch-grad-cam and captum offer nothing for this): with every call inlined, each
node of the graph still names the module it came from, so the value a named module hands on is found and added to
the graph's outputs. :class:`TorchScriptNet` runs that graph when a *tap* (an empty module standing for the named
module, at the same name) carries a hook, and passes the value through the tap: hooks see the module's real output,
and a hook on it receives the real gradient, since the rest of the graph used that very value. A tap cannot replace
what the graph computes, so methods that swap a layer (Ablation-CAM) are not offered (the ``swappable`` trait).

The same reading takes off a final softmax: where the graph's output is ``softmax(z)``, it returns ``z``, and the
methods explain the logits.
"""
from __future__ import annotations

import io
import re
import threading
import warnings
from pathlib import Path

import torch
from torch import nn

from core.errors import CheckpointError

#: operations that only read a tensor's shape: a use by one of these does not make a value a module's output
_SHAPE_ONLY = {"aten::size", "aten::dim", "aten::len", "prim::shape", "aten::numel", "prim::device", "prim::dtype",
               "aten::__isnot__", "aten::__is__", "prim::Uninitialized", "aten::warn", "prim::RaiseException"}
_SOFTMAX = {"aten::softmax", "aten::_softmax"}


def read_script(source: str | Path | bytes) -> torch.jit.ScriptModule:
    """``torch.jit.load`` on the CPU, its errors as :class:`CheckpointError`."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch 2.14 announces the deprecation of TorchScript
            module = torch.jit.load(io.BytesIO(source) if isinstance(source, bytes) else str(source), map_location="cpu")
    except Exception as exc:
        raise CheckpointError(f"not a readable TorchScript file ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})"
                              ) from exc
    return module.eval()


def _path_of(node: torch._C.Node) -> str:
    """The dotted name of the module a node of an inlined graph came from ("" for the top module's own code)."""
    hierarchy = node.getModuleHierarchy()
    parts = [re.sub(r"\(.*\)$", "", p) for p in hierarchy.split(".")] if hierarchy else []
    return ".".join(p for p in parts if p not in ("SELF", "UNKNOWN_INSTANCE", ""))


def _inside(path: str, module: str) -> bool:
    return path == module or path.startswith(module + ".")


class _Graph:
    """The module's forward graph with every call inlined, and the values each named module hands on."""

    def __init__(self, script: torch.jit.ScriptModule) -> None:
        graph = script.forward.graph.copy()
        torch._C._jit_pass_inline(graph)
        self.graph = graph
        nodes = list(graph.nodes())
        self.paths = [_path_of(n) for n in nodes]
        self.index = {n: i for i, n in enumerate(nodes)}

    def modules(self) -> list[str]:
        """Every named module the graph runs code of, with its parents."""
        found = set()
        for p in self.paths:
            parts = p.split(".") if p else []
            found.update(".".join(parts[:k]) for k in range(1, len(parts) + 1))
        return sorted(found)

    def output_of(self, module: str):
        """The last tensor value computed inside ``module`` that the rest of the graph uses (its output), or None."""
        best = None
        for node, path in zip(self.graph.nodes(), self.paths):
            if not _inside(path, module):
                continue
            for value in node.outputs():
                if value.type().kind() != "TensorType":
                    continue
                used_outside = any(not _inside(self.paths[self.index[u.user]], module) and u.user.kind() not in _SHAPE_ONLY
                                   for u in value.uses() if u.user in self.index)
                returned = any(u.user.kind() == "prim::Return" for u in value.uses())
                if used_outside or returned:
                    best = value
        return best

    def function(self, taps: list[str], drop_softmax: bool):
        """A function ``f(module._c, x) -> (output, *tapped values)`` over a copy of this graph."""
        graph = self.graph.copy()
        nodes = list(graph.nodes())
        values = []
        for name in taps:
            own = self.output_of(name)
            if own is None:
                raise CheckpointError(f"the TorchScript module's layer {name!r} hands on no tensor")
            values.append(nodes[self.index[own.node()]].outputsAt(list(own.node().outputs()).index(own)))
        ret = graph.return_node()
        out = ret.inputsAt(0)
        if drop_softmax and out.node().kind() in _SOFTMAX:
            out = out.node().inputsAt(0)
        if taps:
            tup = graph.create("prim::TupleConstruct", [out, *values])
            tup.insertBefore(ret)
            tup.output().setType(torch._C.TupleType([out.type(), *(v.type() for v in values)]))
            ret.replaceInput(0, tup.output())
        else:
            ret.replaceInput(0, out)
        torch._C._jit_pass_dce(graph)
        return torch._C._create_function_from_graph("tapped_forward", graph)

    def ends_in_softmax(self) -> bool:
        return self.graph.return_node().inputsAt(0).node().kind() in _SOFTMAX


class _Tap(nn.Module):
    """Stands for a named module of a TorchScript graph: its forward hooks see that module's output (and a hook
    registered on that output receives its gradient). Sub-taps are its children, as the modules are."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


class TorchScriptNet(nn.Module):
    """A loaded TorchScript module with a tap at each named module, so that CAM methods can hook its layers."""

    def __init__(self, script: torch.jit.ScriptModule, drop_softmax: bool = False) -> None:
        super().__init__()
        self.script = script
        self.drop_softmax = drop_softmax
        graph = _Graph(script)
        self.ends_in_softmax = graph.ends_in_softmax()
        own = set(dir(self))  # a layer named like an attribute of this class ("script", "forward") gets no tap
        self.tap_names = [m for m in graph.modules() if graph.output_of(m) is not None and m.split(".")[0] not in own]
        for name in self.tap_names:  # parents before children (sorted): each tap under its parent's tap
            parent = self
            for part in name.split(".")[:-1]:
                if not hasattr(parent, part) or not isinstance(getattr(parent, part), _Tap):
                    parent.add_module(part, _Tap())
                parent = getattr(parent, part)
            if not isinstance(getattr(parent, name.split(".")[-1], None), _Tap):
                parent.add_module(name.split(".")[-1], _Tap())
        self._graph = graph
        self._functions: dict[tuple[str, ...], object] = {}
        self._lock = threading.Lock()

    def __deepcopy__(self, memo):
        """A replica: the TorchScript module copied; the graph and its functions (which take the module as an argument)
        shared, with the lock that guards them."""
        import copy

        new = self.__class__.__new__(self.__class__)
        memo[id(self)] = new
        for k, v in self.__dict__.items():
            new.__dict__[k] = v if k in ("_graph", "_functions", "_lock") else copy.deepcopy(v, memo)
        # a TorchScript module copied under no_grad (as replicas are made) loses its parameters' requires_grad
        for mine, theirs in zip(self.script.parameters(), new.script.parameters()):
            theirs.requires_grad_(mine.requires_grad)
        return new

    def _hooked(self) -> list[str]:
        return [n for n in self.tap_names if self.get_submodule(n)._forward_hooks or self.get_submodule(n)._forward_pre_hooks]

    def _function(self, taps: list[str]):
        key = (*taps, f"softmax={self.drop_softmax}")
        with self._lock:
            fn = self._functions.get(key)
            if fn is None:
                fn = self._functions[key] = self._graph.function(taps, self.drop_softmax)
        return fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        taps = self._hooked()
        if not taps and not self.drop_softmax:
            return self.script(x)
        with torch.jit.optimized_execution(False):
            got = self._function(taps)(self.script._c, x)
        if not taps:
            return got
        out, *values = got
        for name, value in zip(taps, values):
            self.get_submodule(name)(value)
        return out

    def layer_outputs(self, x: torch.Tensor) -> list[tuple[str, tuple[int, ...]]]:
        """Each tapped layer's output shape for input ``x``, in the order the graph finishes them."""
        if not self.tap_names:
            return []
        _, *values = self._function(self.tap_names)(self.script._c, x)
        order = {n: self._graph.index[self._graph.output_of(n).node()] for n in self.tap_names}
        found = [(n, tuple(v.shape)) for n, v in zip(self.tap_names, values) if isinstance(v, torch.Tensor)]
        return sorted(found, key=lambda item: (order[item[0]], -item[0].count(".")))


# --- the format ----------------------------------------------------------------------------------------------------

MODEL_FILE = "model.ts"
#: why a TorchScript model's layers cannot be swapped (shown where Ablation-CAM is not offered)
TAPS_NOTE = "a TorchScript graph: its layers are read where the graph computes them"


def _net(script: torch.jit.ScriptModule, drop_softmax: bool) -> TorchScriptNet:
    net = TorchScriptNet(script, drop_softmax=drop_softmax)
    net.trait_notes = {"swappable": TAPS_NOTE}
    return net


def open_file(path: Path, given: dict):
    """A TorchScript file as an :class:`~core.importers.draft.Opened`; a final softmax is taken off the graph."""
    from core.importers.draft import Opened
    from core.importers.store import copy_into

    script = read_script(path)
    probe_net = TorchScriptNet(script)
    drop = probe_net.ends_in_softmax and given.get("output") != "probabilities"
    values, notes = {}, []
    if drop:
        values["output"] = ("logits", "detected: the graph ends in a softmax, taken off (the methods explain the "
                                      "logits before it)")
        notes.append("the graph's final softmax was taken off: the maps explain the logits before it, and the "
                     "predicted probabilities are the same")
    return Opened("torchscript", _net(script, drop), "torchscript", values, notes, {"softmax_removed": drop},
                  write=lambda folder: copy_into(path, folder, MODEL_FILE), model_file=MODEL_FILE)


def load(folder: Path, card) -> nn.Module:
    return _net(read_script(folder / card.model_file), bool(card.source.get("softmax_removed")))
