"""A constant-velocity Kalman filter over boxes, for many tracks at once.

State per track: (cx, cy, w, h, vcx, vcy, vw, vh), the box centre and size and their
velocities in pixels per frame; the measurement is (cx, cy, w, h). Noise scales with the
box size, as in SORT/ByteTrack/BoT-SORT (position std 1/20 of the size, velocity 1/160):
a 20 px and a 200 px object are tracked equally well. All tracks are predicted and
updated in one NumPy call each (stacked (N, 8) means and (N, 8, 8) covariances), so the
cost barely grows with the number of tracks.
"""

from __future__ import annotations

import numpy as np

__all__ = ["KalmanBoxFilter", "xywh_to_xyxy", "xyxy_to_xywh"]

_F = np.eye(8)
_F[:4, 4:] = np.eye(4)  # x += v (one frame)
_H = np.eye(4, 8)


def xyxy_to_xywh(boxes: np.ndarray) -> np.ndarray:
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    wh = b[:, 2:] - b[:, :2]
    return np.concatenate([b[:, :2] + wh / 2, wh], 1)


def xywh_to_xyxy(xywh: np.ndarray) -> np.ndarray:
    half = xywh[:, 2:4] / 2
    return np.concatenate([xywh[:, :2] - half, xywh[:, :2] + half], 1)


class KalmanBoxFilter:
    """Predict and update stacked box states (N, 8) and covariances (N, 8, 8)."""

    def __init__(self, std_position: float = 1 / 20, std_velocity: float = 1 / 160) -> None:
        self.std_position = std_position
        self.std_velocity = std_velocity

    def _wh4(self, wh: np.ndarray) -> np.ndarray:
        """(N, 4) of (w, h, w, h), floored at 1 px so a degenerate box keeps some noise."""
        wh = np.maximum(wh, 1.0)
        return np.concatenate([wh, wh], 1)

    def initiate(self, xywh: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """New states from measurements (N, 4): zero velocity, wide velocity uncertainty."""
        n = len(xywh)
        mean = np.zeros((n, 8))
        mean[:, :4] = xywh
        s = self._wh4(xywh[:, 2:4])
        std = np.concatenate([2 * self.std_position * s, 10 * self.std_velocity * s], 1)
        cov = np.zeros((n, 8, 8))
        idx = np.arange(8)
        cov[:, idx, idx] = std**2
        return mean, cov

    def predict(self, mean: np.ndarray, cov: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One frame ahead."""
        if not len(mean):
            return mean, cov
        s = self._wh4(mean[:, 2:4])
        q = np.concatenate([self.std_position * s, self.std_velocity * s], 1) ** 2
        mean = mean @ _F.T
        # F P F^T for F = [[I, I], [0, I]] in blocks: [[A+B+C+D, B+D], [C+D, D]]
        a, b = cov[:, :4, :4], cov[:, :4, 4:]
        c, d = cov[:, 4:, :4], cov[:, 4:, 4:]
        out = np.empty_like(cov)
        out[:, :4, :4] = a + b + c + d
        out[:, :4, 4:] = b + d
        out[:, 4:, :4] = c + d
        out[:, 4:, 4:] = d
        cov = out
        idx = np.arange(8)
        cov[:, idx, idx] += q
        return mean, cov

    def update(
        self, mean: np.ndarray, cov: np.ndarray, xywh: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Correct states (N, 8) with their measurements (N, 4)."""
        if not len(mean):
            return mean, cov
        s = self._wh4(mean[:, 2:4])
        r = (self.std_position * s) ** 2
        ph = cov[:, :, :4]  # P H^T (N, 8, 4)
        big_s = cov[:, :4, :4].copy()  # S = H P H^T + R
        idx = np.arange(4)
        big_s[:, idx, idx] += r
        # K = P H^T S^-1, solved as K^T = S^-1 (P H^T)^T
        gain = np.linalg.solve(big_s, ph.transpose(0, 2, 1)).transpose(0, 2, 1)
        innovation = xywh - mean[:, :4]
        mean = mean + np.einsum("nij,nj->ni", gain, innovation)
        # P - K H P (= P - K S K^T for a symmetric P), averaged with its transpose so
        # rounding never makes P asymmetric: with an asymmetric P this update diverges
        cov = cov - gain @ cov[:, :4, :]
        cov = (cov + cov.transpose(0, 2, 1)) / 2
        return mean, cov
