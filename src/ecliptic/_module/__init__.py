"""The Module system. See `README.md` in this folder for the design."""

from ._abstract import AbstractClassVar as AbstractClassVar, AbstractVar as AbstractVar
from ._field import (
    field as field,
    static_field as static_field,
    StrictConfig as StrictConfig,
)
from ._flatten import MISSING as MISSING
from ._module import (
    BoundMethod as BoundMethod,
    is_abstract_module as is_abstract_module,
    is_initialising as is_initialising,
    Module as Module,
)
from ._prebuilt import (
    module_update_wrapper as module_update_wrapper,
    Partial as Partial,
    Static as Static,
)
