"""yolov2-voc's convolutions at 416x416, one image, in int8 against bf16: each layer's
convolution alone (the input packed per call, the epilogue, no batch norm pass), timed on
the kernels themselves, the median of --repeats calls.

    python scripts/bench_int8_layers.py [--threads 2] [--repeats 5] [--size 416]

Columns: the layer, its shape, milliseconds for int8 on its path (AMX direct for stride 1 and
16 channels or more, else the fastest im2col kernel), int8 AMX over im2col where direct
applies, bf16 on its path (kernels/lowp.py), int8 / bf16 of the medians and of the fastest
calls. The calls of a layer take turns, so that a shared machine's busy moments fall on all
of them alike; still, compare ratios from one run, not times from different runs.
"""
import argparse
import statistics
import time

import numpy as np

from yolo9000 import Network
from yolo9000.kernels import core, int8, lowp


def interleaved_ms(calls, repeats):
    """Each call's times in milliseconds, the calls taking turns (after one warm-up each), so
    that a busy moment of a shared machine falls on all of them alike."""
    for call in calls:
        call()
    times = [[] for _ in calls]
    for _ in range(repeats):
        for call, own in zip(calls, times):
            start = time.perf_counter()
            call()
            own.append(1e3 * (time.perf_counter() - start))
    return times


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--size", type=int, default=416)
    args = parser.parse_args()
    core.set_num_threads(args.threads)
    unit8, unit16 = int8.int8_hardware_kernel(), lowp.bf16_hardware_kernel()
    if unit8 is None or unit16 is None:
        raise SystemExit(f"needs {int8.INT8_UNITS} and {lowp.BF16_UNITS}")
    net = Network.from_cfg("yolov2-voc", width=args.size, height=args.size)
    rng = np.random.default_rng(0)
    totals = {"int8": 0.0, "bf16": 0.0}
    print(f"{'layer':>5} {'shape':>28} {'int8 ms':>8} {'path':>13} {'im2col ms':>9} "
          f"{'bf16 ms':>8} {'int8/bf16':>9} {'of mins':>9}")
    for index, layer in enumerate(net.layers):
        if layer.kind != "conv":
            continue
        c, h, w = layer.in_shape
        f, size, stride, pad = layer.filters, layer.size, layer.stride, layer.padding
        oh, ow = layer.out_shape[1:]
        x = rng.standard_normal((1, c, h, w)).astype(np.float32)
        weights = rng.standard_normal((f, c, size, size)).astype(np.float32)
        scale = np.ones(f, np.float32)
        bias = np.zeros(f, np.float32)
        out = np.empty((1, f, oh, ow), np.float32)
        q, scales = int8.quantize_weights(weights)
        input_scale = float(np.abs(x).max()) / 127

        def int8_call(kernel, direct):
            packed = int8.Int8Weights(q, scales, kernel, direct=direct)
            return lambda: int8.convolve_int8(x, packed, input_scale, size, stride, pad, out,
                                              scale, bias, core.ACT_LEAKY, kernel)

        direct = int8.int8_direct_applies(unit8, c, stride)
        packed16 = lowp.BF16Weights(weights, taps_major=lowp.direct_applies(unit16, c, stride))
        calls = [int8_call(unit8, direct),
                 lambda: lowp.convolve_bf16(x, packed16, size, stride, pad, out, scale, bias,
                                            core.ACT_LEAKY, unit16)]
        if direct:
            calls.append(int8_call(unit8, False))
        times = interleaved_ms(calls, args.repeats)
        t8, t16 = statistics.median(times[0]), statistics.median(times[1])
        im2col = statistics.median(times[2]) if direct else t8
        best = min(times[0]) / min(times[1])
        totals["int8"] += t8
        totals["bf16"] += t16
        shape = f"{h}x{w}x{c}->{f} {size}x{size}/{stride}"
        path = f"{unit8} {'direct' if direct else 'im2col'}"
        print(f"{index:>5} {shape:>28} {t8:8.2f} {path:>13} {im2col:9.2f} {t16:8.2f} "
              f"{t8 / t16:9.2f} {best:9.2f}")
    print(f"{'sum':>5} {'':>28} {totals['int8']:8.2f} {'':>13} {'':>9} {totals['bf16']:8.2f} "
          f"{totals['int8'] / totals['bf16']:9.2f}")


if __name__ == "__main__":
    main()
