"""The pipeline transform engine: pure Python, no I/O, deterministic.

    chain = compile_chain(pipeline["transforms"])          # raises ConfigError(loc, msg)
    state = chain.initial_state()
    out = chain.process(state, items, now_ms)              # -> ChainOutput(outputs, filtered, late, failed, state)
    out = chain.advance(out.state, now_ms)                 # when now_ms >= chain.next_deadline_ms(state)
    out = chain.flush(out.state)                           # on stop

Semantics of every transform: docs/pipelines-transforms.md. Adding one: a module that
registers its `Step` with `@TRANSFORMS.register("name")`, plus its import line below.
"""

# The built-in transforms register themselves on import, in the order the API lists them.
from . import filter, map, aggregate, window, batch  # isort: skip  # noqa: F401
from .chain import TransformChain, compile_chain
from .errors import ConfigError
from .model import TRANSFORMS, ChainOutput, ChainState, Item, OutItem

__all__ = [
    "TRANSFORMS",
    "ChainOutput",
    "ChainState",
    "ConfigError",
    "Item",
    "OutItem",
    "TransformChain",
    "compile_chain",
]
