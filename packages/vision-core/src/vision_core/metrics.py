"""Detection metrics: mAP50, mAP50-95, precision and recall, computed as ultralytics does.

Pure NumPy, so devices and vision-label can score without torch. Matching follows
ultralytics' `match_predictions` (greedy by IoU, one prediction per truth, per IoU
threshold); AP is the area under the monotone precision envelope sampled at 101 recall
points (COCO style); mAP averages over the classes present in the truth.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from vision_core.geometry import box_iou

IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)
_trapezoid = getattr(np, "trapezoid", None) or getattr(np, "trapz")  # noqa: B009 - NumPy < 2 has only trapz


def match_predictions(
    pred_cls: np.ndarray, true_cls: np.ndarray, iou: np.ndarray, iouv: np.ndarray = IOU_THRESHOLDS
) -> np.ndarray:
    """(n_pred, n_iou) bool: prediction i is a true positive at threshold j."""
    correct = np.zeros((len(pred_cls), len(iouv)), dtype=bool)
    if not len(pred_cls) or not len(true_cls):
        return correct
    iou = iou * (true_cls[:, None] == pred_cls[None, :])
    for j, threshold in enumerate(iouv):
        matches = np.array(np.nonzero(iou >= threshold)).T  # (truth, pred)
        if matches.shape[0]:
            if matches.shape[0] > 1:
                matches = matches[iou[matches[:, 0], matches[:, 1]].argsort()[::-1]]
                matches = matches[np.unique(matches[:, 1], return_index=True)[1]]
                matches = matches[np.unique(matches[:, 0], return_index=True)[1]]
            correct[matches[:, 1], j] = True
    return correct


def compute_ap(recall: np.ndarray, precision: np.ndarray) -> float:
    mrec = np.concatenate(([0.0], recall, [1.0]))
    mpre = np.concatenate(([1.0], precision, [0.0]))
    mpre = np.flip(np.maximum.accumulate(np.flip(mpre)))
    x = np.linspace(0, 1, 101)
    return float(_trapezoid(np.interp(x, mrec, mpre), x))


@dataclass
class DetectionMetrics:
    map50: float
    map50_95: float
    precision: float  # at the confidence of best mean F1
    recall: float
    per_class: dict[str, dict[str, float]] = field(default_factory=dict)
    images: int = 0
    instances: int = 0
    predictions: int = 0

    def as_dict(self) -> dict[str, object]:
        return {
            "map50": round(self.map50, 6),
            "map50_95": round(self.map50_95, 6),
            "precision": round(self.precision, 6),
            "recall": round(self.recall, 6),
            "images": self.images,
            "instances": self.instances,
            "predictions": self.predictions,
            "per_class": self.per_class,
        }


class MetricAccumulator:
    """Feed (predictions, truth) per image; `compute()` gives DetectionMetrics."""

    def __init__(self, names: dict[int, str]) -> None:
        self.names = names
        self._tp: list[np.ndarray] = []
        self._conf: list[np.ndarray] = []
        self._pred_cls: list[np.ndarray] = []
        self._true_cls: list[np.ndarray] = []
        self.images = 0

    def add(
        self,
        pred_boxes: np.ndarray,
        pred_scores: np.ndarray,
        pred_cls: np.ndarray,
        true_boxes: np.ndarray,
        true_cls: np.ndarray,
    ) -> None:
        pred_boxes = np.asarray(pred_boxes, np.float64).reshape(-1, 4)
        true_boxes = np.asarray(true_boxes, np.float64).reshape(-1, 4)
        pred_cls = np.asarray(pred_cls, np.int64).reshape(-1)
        true_cls = np.asarray(true_cls, np.int64).reshape(-1)
        iou = (
            box_iou(true_boxes, pred_boxes)
            if len(true_boxes) and len(pred_boxes)
            else np.zeros((len(true_boxes), len(pred_boxes)))
        )
        self._tp.append(match_predictions(pred_cls, true_cls, iou))
        self._conf.append(np.asarray(pred_scores, np.float64).reshape(-1))
        self._pred_cls.append(pred_cls)
        self._true_cls.append(true_cls)
        self.images += 1

    def compute(self) -> DetectionMetrics:
        tp = np.concatenate(self._tp) if self._tp else np.zeros((0, 10), bool)
        conf = np.concatenate(self._conf) if self._conf else np.zeros(0)
        pred_cls = np.concatenate(self._pred_cls) if self._pred_cls else np.zeros(0, np.int64)
        true_cls = np.concatenate(self._true_cls) if self._true_cls else np.zeros(0, np.int64)
        order = np.argsort(-conf, kind="stable")
        tp, conf, pred_cls = tp[order], conf[order], pred_cls[order]
        classes = np.unique(true_cls)
        x = np.linspace(0, 1, 1000)
        ap = np.zeros((len(classes), tp.shape[1]))
        p_curve = np.zeros((len(classes), 1000))
        r_curve = np.zeros((len(classes), 1000))
        per_class: dict[str, dict[str, float]] = {}
        for ci, c in enumerate(classes):
            sel = pred_cls == c
            n_l = int((true_cls == c).sum())
            if sel.sum() == 0 or n_l == 0:
                per_class[self.names.get(int(c), str(c))] = {
                    "ap50": 0.0,
                    "ap50_95": 0.0,
                    "instances": n_l,
                }
                continue
            fpc = (1 - tp[sel]).cumsum(0)
            tpc = tp[sel].cumsum(0)
            recall = tpc / (n_l + 1e-16)
            precision = tpc / (tpc + fpc)
            r_curve[ci] = np.interp(-x, -conf[sel], recall[:, 0], left=0)
            p_curve[ci] = np.interp(-x, -conf[sel], precision[:, 0], left=1)
            for j in range(tp.shape[1]):
                ap[ci, j] = compute_ap(recall[:, j], precision[:, j])
            per_class[self.names.get(int(c), str(c))] = {
                "ap50": round(float(ap[ci, 0]), 6),
                "ap50_95": round(float(ap[ci].mean()), 6),
                "instances": n_l,
            }
        if len(classes):
            f1 = 2 * p_curve * r_curve / (p_curve + r_curve + 1e-16)
            best = int(f1.mean(0).argmax())
            precision_at, recall_at = float(p_curve[:, best].mean()), float(r_curve[:, best].mean())
            map50, map50_95 = float(ap[:, 0].mean()), float(ap.mean())
        else:
            precision_at = recall_at = map50 = map50_95 = 0.0
        return DetectionMetrics(
            map50=map50,
            map50_95=map50_95,
            precision=precision_at,
            recall=recall_at,
            per_class=per_class,
            images=self.images,
            instances=len(true_cls),
            predictions=len(conf),
        )


def detections_to_arrays(dets: Sequence[object]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Detection structs to (boxes, scores, class ids)."""
    if not dets:
        return np.zeros((0, 4)), np.zeros(0), np.zeros(0, np.int64)
    boxes = np.array([d.xyxy for d in dets], np.float64)  # type: ignore[attr-defined]
    scores = np.array([d.score for d in dets], np.float64)  # type: ignore[attr-defined]
    cls = np.array([d.class_id for d in dets], np.int64)  # type: ignore[attr-defined]
    return boxes, scores, cls
