"""Parameter-efficient methods: READ and the baselines of the READ-PVLA paper, one API.

::

    import readpvla as rp
    cfg   = rp.peft.READConfig(bottleneck=4, cell="rnn")
    model = rp.peft.apply(backbone, cfg)        # freeze, insert READ after every FFN
    print(rp.peft.count_parameters(model))      # "#params (M) (%)" like the paper's tables
    rp.peft.save_adapter(model, "my_adapter")   # safetensors + JSON, adapter weights only
    model = rp.peft.load_adapter(fresh_backbone, "my_adapter")

One folder (or file) per method holds its config and layer: ``read/``, ``adapter/`` (Houlsby),
``lora/`` (through the ``peft`` library), ``prompt/``, ``rap/`` (RAP) and ``msta/`` (MSTA), both
for video-text dual encoders, ``ssf/`` (SSF), and ``selective.py`` (Full, Partial, BitFit,
Proj). ``recipes.py`` says where each architecture's FFNs are; ``mapping.py`` applies, counts,
saves and loads; ``layout.py`` tells READ where padding and modalities are;
``safeio.py`` writes checkpoint files atomically and reads their headers before their tensors.

Failing safely: ``apply`` and ``load_adapter`` leave the model exactly as it was on any error;
``save_adapter`` replaces both files or neither; ``load_adapter`` checks format version, backbone
class, dtypes, shapes and values before it builds anything; READ refuses outputs without a token
axis; where READ sits in a decoder, ``generate()`` runs without a KV cache by default.
"""

from .adapter import AdapterConfig, AdapterLayer
from .config import PeftConfig
from .layout import TokenLayout, token_layout
from .lora import LoRAConfig
from .mapping import (
    ParamCount,
    adapter_state_dict,
    apply,
    count_parameters,
    disable_kv_cache,
    load_adapter,
    mark_trainable,
    read_adapter_config,
    requires_full_sequence,
    save_adapter,
)
from .msta import MSTAConfig
from .prompt import PromptConfig
from .rap import RAPConfig
from .read import READConfig, READLayer
from .recipes import HF_RECIPES, block_lists, find_modules
from .selective import BitFitConfig, FullConfig, PartialConfig, ProjConfig
from .ssf import SSFConfig, SSFLayer

#: method name -> config class (the names used in checkpoints, tables and the CLI)
METHODS: dict[str, type[PeftConfig]] = {
    "full": FullConfig,
    "partial": PartialConfig,
    "bias": BitFitConfig,
    "proj": ProjConfig,
    "lora": LoRAConfig,
    "prompt": PromptConfig,
    "adapter": AdapterConfig,
    "read": READConfig,
    "rap": RAPConfig,
    "ssf": SSFConfig,
    "msta": MSTAConfig,
}

__all__ = [
    "HF_RECIPES",
    "METHODS",
    "AdapterConfig",
    "AdapterLayer",
    "BitFitConfig",
    "FullConfig",
    "LoRAConfig",
    "MSTAConfig",
    "ParamCount",
    "PartialConfig",
    "PeftConfig",
    "ProjConfig",
    "PromptConfig",
    "RAPConfig",
    "SSFConfig",
    "SSFLayer",
    "READConfig",
    "READLayer",
    "TokenLayout",
    "adapter_state_dict",
    "apply",
    "block_lists",
    "count_parameters",
    "disable_kv_cache",
    "find_modules",
    "load_adapter",
    "mark_trainable",
    "read_adapter_config",
    "requires_full_sequence",
    "save_adapter",
    "token_layout",
]
