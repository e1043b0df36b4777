"""The stages of one execution, one module each, in order: prepare → generate → check → fallback
→ finish (plus :mod:`~tlm.engine.stages.call`, the model call they share). The order itself is
written once, in :mod:`tlm.engine.execution`."""
