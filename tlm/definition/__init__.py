"""Task definitions: the model, the JSON Schema checks, the loader and the versioned registry.

Load one file with :func:`load_definition` (or text/an object with :func:`parse_definition`); load
a directory of ``<id>/<version>.json`` files with :meth:`DefinitionRegistry.from_directory`. Bad
definitions raise :class:`tlm.errors.TaskSchemaError` listing every problem with file and JSON path.
"""

from tlm.definition.compat import check_compatibility, check_history
from tlm.definition.loader import load_definition, parse_definition
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
from tlm.definition.registry import DefinitionRegistry, default_definitions_dir
from tlm.definition.semver import Version, VersionRange, parse_range, parse_version
from tlm.definition.serde import make_converter

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
    "load_definition",
    "parse_definition",
    "DefinitionRegistry",
    "default_definitions_dir",
    "check_compatibility",
    "check_history",
    "make_converter",
    "Version",
    "VersionRange",
    "parse_version",
    "parse_range",
)
