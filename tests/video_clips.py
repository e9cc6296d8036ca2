"""Short test videos written with PyAV directly (not through yolo9000's video code): moving
synthetic shapes, in a lossless codec so that every decoded frame is the array written."""
import numpy as np

from yolo9000.data.synthetic_shapes import DEMO, render_sample

RATE = 25
WIDTH, HEIGHT = 160, 128


def moving_shapes(n_frames, width=WIDTH, height=HEIGHT, seed=0):
    """n_frames uint8 (height, width, 3) frames: a window sliding 3 px right and 2 px down a
    frame over one image of shapes the bundled shapes model knows (the demo's difficulty)."""
    side = max(width + 3 * n_frames, height + 2 * n_frames)
    image, _, _ = render_sample(np.random.default_rng(seed), size=side, difficulty=DEMO)
    canvas = np.asarray(image)
    return [np.ascontiguousarray(canvas[2 * i:2 * i + height, 3 * i:3 * i + width])
            for i in range(n_frames)]


def write_video(path, frames, rate=RATE, codec="ffv1", pix_fmt="bgr0", options=None,
                container_options=None):
    """Encode frames (uint8 RGB) into path; ffv1 in bgr0 is lossless for RGB input."""
    import av

    height, width = frames[0].shape[:2]
    with av.open(str(path), "w", options=container_options or {}) as container:
        stream = container.add_stream(codec, rate=rate)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        if options:
            stream.options = options
        for rgb in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
        container.mux(stream.encode(None))
    return path


def read_video(path):
    """(frames as uint8 RGB arrays, average rate, width, height) of a video, decoded by PyAV."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
        return (frames, stream.average_rate, stream.codec_context.width,
                stream.codec_context.height)
