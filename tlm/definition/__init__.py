"""Task definitions: the model, the JSON Schema checks, the loader and the versioned registry."""

from tlm.definition.model import (
    Budget,
    CacheSpec,
    ChainParams,
    ConsensusParams,
    ExternalParams,
    FallbackSpec,
    HierarchicalParams,
    HumanParams,
    IOSpec,
    NoParams,
    PromptVariant,
    RankingCriteria,
    TaskDefinition,
    VerificationSpec,
)

__all__ = (
    "Budget",
    "CacheSpec",
    "ChainParams",
    "ConsensusParams",
    "ExternalParams",
    "FallbackSpec",
    "HierarchicalParams",
    "HumanParams",
    "IOSpec",
    "NoParams",
    "PromptVariant",
    "RankingCriteria",
    "TaskDefinition",
    "VerificationSpec",
)
