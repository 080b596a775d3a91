"""Frames in (camera, video, image folder) and annotated previews out. Needs vision-core[infer]."""

from vision_core.media.frame_source import (
    IMAGE_EXTENSIONS,
    Frame,
    FrameSource,
    list_images,
    read_image,
)
from vision_core.media.preview import draw_detections

__all__ = [
    "IMAGE_EXTENSIONS",
    "Frame",
    "FrameSource",
    "draw_detections",
    "list_images",
    "read_image",
]
