"""A constant-velocity Kalman filter over boxes, for many tracks at once.

State per track: (cx, cy, w, h, vcx, vcy, vw, vh), the box centre and size and their
velocities in pixels per frame; the measurement is (cx, cy, w, h). Noise scales with the
box size, as in SORT/ByteTrack/BoT-SORT (position std 1/20 of the size, velocity 1/160):
a 20 px and a 200 px object are tracked equally well.

The motion (x += v), the measurement (x) and every noise are per coordinate, and a new
track's covariance is diagonal, so the 8x8 covariance of SORT and ByteTrack is four
independent 2x2 blocks (each coordinate with its own velocity) all along: the cross terms
start at zero and no step makes them anything else. The filter keeps only those blocks,
as (N, 4, 3) arrays of (var x, cov x v, var v) per coordinate, and every step is a few
element-wise NumPy operations over all tracks (no 8x8 products, no 4x4 solves): the same
numbers as the full-matrix filter (a test checks it), at a fraction of the cost per frame.
`full_covariance` gives the 8x8 matrices back.
"""

from __future__ import annotations

import numpy as np

__all__ = ["KalmanBoxFilter", "full_covariance", "xywh_to_xyxy", "xyxy_to_xywh"]

_VAR_X, _COV_XV, _VAR_V = 0, 1, 2  # the last axis of a covariance array


def xyxy_to_xywh(boxes: np.ndarray) -> np.ndarray:
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    wh = b[:, 2:] - b[:, :2]
    return np.concatenate([b[:, :2] + wh / 2, wh], 1)


def xywh_to_xyxy(xywh: np.ndarray) -> np.ndarray:
    half = xywh[:, 2:4] / 2
    return np.concatenate([xywh[:, :2] - half, xywh[:, :2] + half], 1)


def full_covariance(cov: np.ndarray) -> np.ndarray:
    """(N, 8, 8) covariances of the state (cx, cy, w, h, vcx, vcy, vw, vh) from the
    filter's (N, 4, 3) blocks."""
    n = len(cov)
    out = np.zeros((n, 8, 8))
    i = np.arange(4)
    out[:, i, i] = cov[:, :, _VAR_X]
    out[:, i, i + 4] = cov[:, :, _COV_XV]
    out[:, i + 4, i] = cov[:, :, _COV_XV]
    out[:, i + 4, i + 4] = cov[:, :, _VAR_V]
    return out


class KalmanBoxFilter:
    """Predict and update stacked box states (N, 8) and covariance blocks (N, 4, 3)."""

    def __init__(self, std_position: float = 1 / 20, std_velocity: float = 1 / 160) -> None:
        self.std_position = std_position
        self.std_velocity = std_velocity

    @staticmethod
    def _wh4(wh: np.ndarray) -> np.ndarray:
        """(N, 4) of (w, h, w, h), floored at 1 px so a degenerate box keeps some noise."""
        wh = np.maximum(wh, 1.0)
        return np.concatenate([wh, wh], 1)

    def initiate(self, xywh: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """New states from measurements (N, 4): zero velocity, wide velocity uncertainty."""
        n = len(xywh)
        mean = np.zeros((n, 8))
        mean[:, :4] = xywh
        s = self._wh4(xywh[:, 2:4])
        cov = np.zeros((n, 4, 3))
        cov[:, :, _VAR_X] = (2 * self.std_position * s) ** 2
        cov[:, :, _VAR_V] = (10 * self.std_velocity * s) ** 2
        return mean, cov

    def predict(self, mean: np.ndarray, cov: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One frame ahead: x += v; per coordinate P = F P F^T + Q with F = [[1, 1], [0, 1]]."""
        if not len(mean):
            return mean, cov
        s = self._wh4(mean[:, 2:4])
        out_mean = mean.copy()
        out_mean[:, :4] += mean[:, 4:]
        p, c, v = cov[:, :, _VAR_X], cov[:, :, _COV_XV], cov[:, :, _VAR_V]
        out = np.empty_like(cov)
        out[:, :, _VAR_X] = p + 2 * c + v + (self.std_position * s) ** 2
        out[:, :, _COV_XV] = c + v
        out[:, :, _VAR_V] = v + (self.std_velocity * s) ** 2
        return out_mean, out

    def update(
        self, mean: np.ndarray, cov: np.ndarray, xywh: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Correct states (N, 8) with their measurements (N, 4)."""
        if not len(mean):
            return mean, cov
        r = (self.std_position * self._wh4(mean[:, 2:4])) ** 2
        p, c, v = cov[:, :, _VAR_X], cov[:, :, _COV_XV], cov[:, :, _VAR_V]
        big_s = p + r  # innovation variance, per coordinate
        k_x, k_v = p / big_s, c / big_s  # the gain of the position and of the velocity
        innovation = xywh - mean[:, :4]
        out_mean = mean.copy()
        out_mean[:, :4] += k_x * innovation
        out_mean[:, 4:] += k_v * innovation
        # P - K H P: stays positive definite by construction (the determinant becomes
        # r / S times the prior's), no symmetrising needed with three numbers per block
        kept = r / big_s
        out = np.empty_like(cov)
        out[:, :, _VAR_X] = p * kept
        out[:, :, _COV_XV] = c * kept
        out[:, :, _VAR_V] = v - c * k_v
        return out_mean, out
