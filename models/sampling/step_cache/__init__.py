"""Step caches: TeaCache, MagCache and EasyCache skip a guidance pass's model work at steps where
its result is predicted to change little, reusing what that pass kept from its last run."""
from .base import StepCache
from .runner import cached_predictions, make_step_cache
from .settings import CACHE_KINDS, DEFAULT_THRESHOLDS, StepCacheSettings, validate_cache

__all__ = ["CACHE_KINDS", "DEFAULT_THRESHOLDS", "StepCache", "StepCacheSettings", "cached_predictions",
           "make_step_cache", "validate_cache"]
