"""Frames in (camera, video, image folder) and annotated previews out. Needs vision-core[infer]."""

from vision_core.media.codec import encode_jpeg, image_mime, png_has_alpha, read_frame, read_image
from vision_core.media.frame import Frame
from vision_core.media.frame_source import IMAGE_EXTENSIONS, FrameSource, list_images
from vision_core.media.preview import draw_detections

__all__ = [
    "IMAGE_EXTENSIONS",
    "Frame",
    "FrameSource",
    "draw_detections",
    "encode_jpeg",
    "image_mime",
    "list_images",
    "png_has_alpha",
    "read_frame",
    "read_image",
]
