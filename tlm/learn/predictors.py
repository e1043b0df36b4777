"""Online predictors with uncertainty: success probability and cost of one model on one task.

:class:`SuccessPredictor` is a Bayesian probit regression over sparse features, learned one
outcome at a time by assumed-density filtering with a diagonal Gaussian posterior over the weights
(the update of Graepel et al., "Web-scale Bayesian click-through rate prediction", ICML 2010). It
gives the predicted probability of success for an input, and the uncertainty of that prediction,
so selection can explore by Thompson sampling (draw the score) or UCB (optimistic score). Each
outcome may carry a weight (a person's judgement counts more than an automatic verdict) and a
share (a score of 0.7 is 0.7 of a success and 0.3 of a failure).

:class:`CostPredictor` is a Bayesian linear regression of a call's cost on the prompt's size
(``cost = a + b * tokens / 1000``), updated by recursive least squares from a prior that is the
catalog's price (or nothing).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from tlm.learn.features import BIAS, FeatureVector

__all__ = ("SuccessPredictor", "CostPredictor", "normal_cdf", "probit")

_SQRT2 = math.sqrt(2.0)


def normal_cdf(x: float) -> float:
    """The standard normal CDF."""
    return 0.5 * math.erfc(-x / _SQRT2)


def _normal_pdf(x: float) -> float:
    return math.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)


def probit(p: float) -> float:
    """The inverse of :func:`normal_cdf` (Acklam's rational approximation, |error| < 1.2e-9)."""
    p = min(max(p, 1e-9), 1.0 - 1e-9)
    a = (-39.69683028665376, 220.9460984245205, -275.9285104469687, 138.3577518672690,
         -30.66479806614716, 2.506628277459239)  # fmt: skip
    b = (-54.47609879822406, 161.5858368580409, -155.6989798598866, 66.80131188771972,
         -13.28068155288572)  # fmt: skip
    c = (-0.007784894002430293, -0.3223964580411365, -2.400758277161838, -2.549732539343734,
         4.374664141464968, 2.938163982698783)  # fmt: skip
    d = (0.007784695709041462, 0.3224671290700398, 2.445134137142996, 3.754408661907416)
    if p < 0.02425:
        q = math.sqrt(-2.0 * math.log(p))
        return (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) / (
            (((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1.0
        )
    if p > 1.0 - 0.02425:
        return -probit(1.0 - p)
    q = p - 0.5
    r = q * q
    return (
        (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5])
        * q
        / (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1.0)
    )


class SuccessPredictor:
    """P(success | input features) with a diagonal Gaussian posterior over probit weights.

    Args:
        dims: Feature dimensions (as the :class:`~tlm.learn.features.HashedFeatures` used).
        prior_quality: The success probability before any evidence (sets the bias weight's mean).
        prior_variance: Each text weight's prior variance: how far the input may move a
            prediction (larger learns faster and overfits sooner; chosen by cross-validation).
        bias_variance: The bias weight's prior variance.
        beta: The probit noise (the scale of the link).
    """

    def __init__(
        self,
        dims: int,
        *,
        prior_quality: float = 0.5,
        prior_variance: float = 0.5,
        bias_variance: float = 1.0,
        beta: float = 1.0,
    ) -> None:
        if prior_variance <= 0 or bias_variance <= 0 or beta <= 0:
            raise ValueError("variances and beta must be positive")
        self.dims = dims
        self.beta = beta
        self.prior_variance = prior_variance
        self.mean = np.zeros(dims)
        self.variance = np.full(dims, prior_variance)
        total = beta * beta + bias_variance
        self.mean[BIAS] = probit(prior_quality) * math.sqrt(total)
        self.variance[BIAS] = bias_variance
        self.observations = 0.0
        """Weighted outcomes seen."""

    def score(self, x: FeatureVector) -> tuple[float, float]:
        """The mean and variance of the latent score ``w . x``."""
        values = x.values
        mean = float(self.mean[x.indices] @ values)
        variance = float(self.variance[x.indices] @ (values * values))
        return mean, variance

    def predict(self, x: FeatureVector) -> float:
        """The posterior predictive probability of success."""
        mean, variance = self.score(x)
        return normal_cdf(mean / math.sqrt(self.beta * self.beta + variance))

    def uncertainty(self, x: FeatureVector) -> float:
        """The standard deviation of the latent score (how unsure the prediction is)."""
        return math.sqrt(self.score(x)[1])

    def sample(self, x: FeatureVector, rng: np.random.Generator) -> float:
        """A Thompson draw: the success probability under one sample of the weights."""
        mean, variance = self.score(x)
        return normal_cdf((mean + math.sqrt(variance) * float(rng.standard_normal())) / self.beta)

    def optimistic(self, x: FeatureVector, exploration: float) -> float:
        """UCB: the success probability at ``exploration`` standard deviations above the mean."""
        mean, variance = self.score(x)
        return normal_cdf((mean + exploration * math.sqrt(variance)) / self.beta)

    def update(self, x: FeatureVector, success: float, weight: float = 1.0) -> None:
        """Learn one outcome: ``success`` in 0..1 (a share), worth ``weight`` outcomes."""
        if weight <= 0:
            return
        success = min(max(success, 0.0), 1.0)
        for label, share in ((1.0, success), (-1.0, 1.0 - success)):
            amount = weight * share
            while amount > 1e-12:
                step = min(amount, 1.0)
                self._adf(x, label, step)
                amount -= step
        self.observations += weight

    def _adf(self, x: FeatureVector, label: float, step: float) -> None:
        idx, values = x.indices, x.values
        var = self.variance[idx]
        total = self.beta * self.beta + float(var @ (values * values))
        sd = math.sqrt(total)
        t = label * float(self.mean[idx] @ values) / sd
        cdf = max(normal_cdf(t), 1e-300)
        v = _normal_pdf(t) / cdf
        w = v * (v + t)
        self.mean[idx] += step * label * var * values / sd * v
        self.variance[idx] = var * np.maximum(1.0 - step * var * values * values / total * w, 1e-6)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready state (only the weights that moved from the prior)."""
        moved = np.nonzero((self.mean != 0.0) | (self.variance != self.prior_variance))[0]
        return {
            "dims": self.dims,
            "beta": self.beta,
            "prior_variance": self.prior_variance,
            "observations": self.observations,
            "indices": moved.tolist(),
            "mean": [round(float(v), 9) for v in self.mean[moved]],
            "variance": [round(float(v), 9) for v in self.variance[moved]],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SuccessPredictor:
        """Inverse of :meth:`to_dict`."""
        predictor = cls(
            int(data["dims"]),
            prior_variance=float(data["prior_variance"]),
            beta=float(data["beta"]),
        )
        indices = np.asarray(data["indices"], dtype=np.int64)
        if indices.size and (indices.min() < 0 or indices.max() >= predictor.dims):
            raise ValueError("feature index out of range")
        predictor.mean[:] = 0.0
        predictor.mean[indices] = np.asarray(data["mean"], dtype=np.float64)
        predictor.variance[indices] = np.asarray(data["variance"], dtype=np.float64)
        predictor.observations = float(data.get("observations", 0.0))
        return predictor


class CostPredictor:
    """Cost of one call from the prompt's size: a Bayesian linear regression (RLS).

    Args:
        prior_cost: The expected cost of a call with ``prior_tokens`` prompt tokens (the
            catalog's price), or ``None`` when unknown (then the first observations decide).
        prior_tokens: The prompt size ``prior_cost`` is quoted at.
        strength: How many observations the prior is worth.
    """

    def __init__(
        self, prior_cost: float | None = None, *, prior_tokens: int = 1_000, strength: float = 1.0
    ) -> None:
        self.theta = np.zeros(2)
        if prior_cost is not None:
            # all of it per token by default (prompt-dominated pricing)
            self.theta[1] = prior_cost / max(prior_tokens / 1000.0, 1e-9)
        scale = strength if prior_cost is not None else 1e-6
        self.precision = np.eye(2) * scale
        self.known = prior_cost is not None
        self.observations = 0.0

    def predict(self, tokens: float) -> float:
        """The expected cost of a call whose prompt has ``tokens`` tokens (never negative)."""
        return max(float(self.theta @ np.array([1.0, tokens / 1000.0])), 0.0)

    def update(self, tokens: float, cost: float, weight: float = 1.0) -> None:
        """Learn one observed call."""
        x = np.array([1.0, tokens / 1000.0])
        rhs = self.precision @ self.theta + weight * cost * x
        self.precision = self.precision + weight * np.outer(x, x)
        self.theta = np.asarray(np.linalg.solve(self.precision, rhs), dtype=np.float64)
        self.known = True
        self.observations += weight

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready state."""
        return {
            "theta": [float(v) for v in self.theta],
            "precision": [[float(v) for v in row] for row in self.precision],
            "known": self.known,
            "observations": self.observations,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CostPredictor:
        """Inverse of :meth:`to_dict`."""
        predictor = cls()
        predictor.theta = np.asarray(data["theta"], dtype=np.float64).reshape(2)
        predictor.precision = np.asarray(data["precision"], dtype=np.float64).reshape(2, 2)
        predictor.known = bool(data["known"])
        predictor.observations = float(data.get("observations", 0.0))
        return predictor
