"""Per-op latency of a TFLite model: every operator timed alone, in a one-op model cut from the file.

Why this way: LiteRT's pip wheels have no op profiler (the C++ `benchmark_model
--enable_op_profiling` is not in them, and the Python interpreter exposes no profiling hook), yet
what makes one variant slower than another — QUANTIZE/DEQUANTIZE pairs at every float island,
ops XNNPACK has no int8 kernel for, many tiny per-branch ops — shows only per op. So each
operator is cut out with its tensors, quantisation parameters and constant buffers into a
model of its own, run by the same interpreter with the same default XNNPACK delegate and one
thread, and timed over many invokes; the interpreter's per-invoke overhead, measured the same way
on a one-element op, is subtracted.

What it does not see: fusion across ops inside one XNNPACK partition and cache effects of the
whole graph, so the sum of the ops is not the model's latency (the report gives both).

Example:
    profile = op_profile(tflite_bytes)
    profile["by_op"][0]      # {"op": "CONV_2D", "count": 8, "ms": 0.21, "share": 0.45}
    profile["ops"][0]        # the slowest single op: {"index": 12, "op": "CONV_2D", "types": "int8", "ms": 0.06}
    profile["all"]           # every op in execution order
"""
import collections
import copy
import statistics
import time

import numpy as np
from ai_edge_litert import schema_py_generated as schema
from ai_edge_litert.interpreter import Interpreter, OpResolverType
from ai_edge_litert.tools import flatbuffer_utils

from mmkeras.export.tflite import _TENSOR_TYPES, is_constant, op_name

# Ops that call other subgraphs cannot be cut out alone.
_CONTROL_FLOW = {"WHILE", "IF", "CALL_ONCE", "STABLEHLO_WHILE", "STABLEHLO_CASE"}


def op_profile(tflite_bytes, invokes=200, rounds=5, slowest=10):
    """Each op's isolated batch-1 latency, and the totals per op type.

    Args:
        tflite_bytes: the model.
        invokes: invokes per timing round (tiny ops take a microsecond; many invokes average it).
        rounds: timing rounds per op; the median round counts.
        slowest: how many single ops `ops` lists (the slowest first).

    Returns:
        {"total_ms": sum over ops, "by_op": [{"op", "count", "ms", "share"}], slowest type first,
         "ops": the `slowest` single ops [{"index", "op", "types", "ms"}],
         "all": every op in execution order (`ms` None where not timed: control flow, and float16
         weights' DEQUANTIZE, which LiteRT does once when the model loads),
         "untimed": {op name: count} of those}.
    """
    model = flatbuffer_utils.convert_bytearray_to_object(tflite_bytes)
    graph = model.subgraphs[0]
    overhead = _invoke_ms(_null_model(), invokes, rounds)
    folded = _folded_weights(model)
    every = []
    for index, op in enumerate(graph.operators):
        name = op_name(model, op)
        types = sorted({_TENSOR_TYPES[graph.tensors[i].type] for i in op.outputs if i >= 0})
        ms = None
        if _timed_alone(model, op, folded):
            ms = max(0.0, _invoke_ms(_one_op_model(model, op, folded), invokes, rounds) - overhead)
        every.append({"index": index, "op": name, "types": "/".join(types), "ms": ms})
    timed = [t for t in every if t["ms"] is not None]
    total = sum(t["ms"] for t in timed)
    per_type = collections.defaultdict(lambda: [0, 0.0])
    for t in timed:
        per_type[t["op"]][0] += 1
        per_type[t["op"]][1] += t["ms"]
    by_op = [{"op": op, "count": count, "ms": ms, "share": ms / total if total else 0.0}
             for op, (count, ms) in sorted(per_type.items(), key=lambda kv: -kv[1][1])]
    return {"total_ms": total, "by_op": by_op, "ops": sorted(timed, key=lambda t: -t["ms"])[:slowest],
            "all": every, "untimed": dict(collections.Counter(t["op"] for t in every if t["ms"] is None))}


def paired_op_ms(reference_bytes, candidate_bytes, invokes=200, rounds=7):
    """The ops two variants of one model share (matched by output tensor name), each pair timed
    interleaved: a round times the reference's op and the candidate's back to back, in alternating
    order, with the interpreter's overhead beside them.

    Why not two `op_profile`s: those time one file after the other, a minute apart, and a load that
    comes or goes in between (another job on the cores) moves every op of one file alone; an
    `int8_mixed` exported on a busy machine kept 2.3× more float bytes than on a quiet one. Back to
    back, a load slows both ops of a pair alike, and the median round discards its bursts.

    Returns:
        {tensor name: (reference ms, candidate ms)}, medians over rounds, overhead subtracted;
        ops that `op_profile` leaves untimed (control flow, folded float16 weights) are absent.
    """
    pairs = []
    for content in (reference_bytes, candidate_bytes):
        model = flatbuffer_utils.convert_bytearray_to_object(content)
        graph, folded = model.subgraphs[0], _folded_weights(model)
        pairs.append({graph.tensors[op.outputs[0]].name.decode(): (model, op, folded)
                      for op in graph.operators
                      if _timed_alone(model, op, folded)})
    reference, candidate = pairs
    null = _ready_interpreter(_null_model())
    timed = {}
    for name in [n for n in candidate if n in reference]:
        ops = [_ready_interpreter(_one_op_model(*side[name])) for side in (reference, candidate)]
        times = [[], []]
        for r in range(rounds):
            overhead = _round_ms(null, invokes)
            for side in ((0, 1) if r % 2 == 0 else (1, 0)):
                times[side].append(max(0.0, _round_ms(ops[side], invokes) - overhead))
        timed[name] = (statistics.median(times[0]), statistics.median(times[1]))
    return timed


def _timed_alone(model, op, folded):
    """Whether `op` can be cut out and timed alone: not control flow (it calls other subgraphs),
    not a float16 weight's DEQUANTIZE (`folded`: LiteRT runs it once, when the model loads)."""
    return op_name(model, op) not in _CONTROL_FLOW and op.outputs[0] not in folded


def output_names(tflite_bytes):
    """The name of each op's first output tensor, in execution order (the ops' identity across variants)."""
    model = flatbuffer_utils.convert_bytearray_to_object(tflite_bytes)
    graph = model.subgraphs[0]
    return [graph.tensors[op.outputs[0]].name.decode() for op in graph.operators]


def _folded_weights(model):
    """Output tensor → float32 BufferT of every DEQUANTIZE of a constant float16 tensor.

    A float16 variant stores weights in half precision behind such ops; LiteRT (and XNNPACK)
    turn them into float32 constants when the model loads, so the op that consumes the weight
    is timed with the float32 constant, as it runs.
    """
    graph, folded = model.subgraphs[0], {}
    for op in graph.operators:
        source = graph.tensors[op.inputs[0]] if len(op.inputs) else None
        if (op_name(model, op) == "DEQUANTIZE" and source is not None and is_constant(model, source)
                and source.type == schema.TensorType.FLOAT16):
            buffer = schema.BufferT()
            half = np.frombuffer(np.asarray(model.buffers[source.buffer].data, np.uint8).tobytes(), np.float16)
            buffer.data = np.frombuffer(half.astype(np.float32).tobytes(), np.uint8)
            folded[op.outputs[0]] = buffer
    return folded


def _one_op_model(model, op, folded):
    """The flatbuffer of a model holding `op` alone: its tensors (renumbered), their constant
    buffers (`folded` ones as float32), every operator code; its variable inputs are the model's inputs."""
    graph = model.subgraphs[0]
    intermediates = list(op.intermediates) if op.intermediates is not None else []
    used = list(dict.fromkeys(i for i in [*op.inputs, *op.outputs, *intermediates] if i >= 0))
    renumber = {old: new for new, old in enumerate(used)}
    buffers = [schema.BufferT()]  # buffer 0 is the empty sentinel
    tensors = []
    for old in used:
        tensor = graph.tensors[old]
        cut = copy.copy(tensor)  # shallow: only the buffer index changes
        if old in folded or is_constant(model, tensor):
            cut.buffer = len(buffers)
            buffers.append(folded.get(old) or model.buffers[tensor.buffer])
        else:
            cut.buffer = 0
        tensors.append(cut)
    one = copy.copy(op)  # its code and options; the tensor indices are renumbered
    one.inputs = [renumber[i] if i >= 0 else -1 for i in op.inputs]  # -1: an omitted optional input
    one.outputs = [renumber[i] for i in op.outputs]
    one.intermediates = [renumber[i] for i in intermediates] if op.intermediates is not None else None
    sub = schema.SubGraphT()
    sub.tensors = tensors
    sub.operators = [one]
    sub.inputs = [renumber[i] for i in op.inputs
                  if i >= 0 and i not in folded and not is_constant(model, graph.tensors[i])]
    sub.outputs = list(one.outputs)
    sub.name = b"op"
    alone = schema.ModelT()
    alone.version = model.version
    alone.operatorCodes = model.operatorCodes
    alone.subgraphs = [sub]
    alone.buffers = buffers
    alone.description = b"one op"
    return bytes(flatbuffer_utils.convert_object_to_bytearray(alone))


def _null_model():
    """A one-op model (ABS of one float) whose latency is the interpreter's per-invoke overhead."""
    code = schema.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = schema.BuiltinOperator.ABS
    code.version = 1
    tensors = []
    for name in (b"x", b"y"):
        tensor = schema.TensorT()
        tensor.shape, tensor.type, tensor.buffer, tensor.name = [1], schema.TensorType.FLOAT32, 0, name
        tensors.append(tensor)
    op = schema.OperatorT()
    op.opcodeIndex, op.inputs, op.outputs = 0, [0], [1]
    sub = schema.SubGraphT()
    sub.tensors, sub.operators, sub.inputs, sub.outputs = tensors, [op], [0], [1]
    null = schema.ModelT()
    null.version, null.operatorCodes, null.subgraphs, null.buffers = 3, [code], [sub], [schema.BufferT()]
    return bytes(flatbuffer_utils.convert_object_to_bytearray(null))


def _ready_interpreter(content):
    """LiteRT with its default XNNPACK delegate, one thread, inputs set and invoked once (which
    packs the weights); the built-in kernels where XNNPACK refuses the op, as
    mmkeras.runtime.LiteRTRunner does for whole models. Inputs: small values, valid indices for
    GATHER-like ops."""
    for resolver in (OpResolverType.AUTO, OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES):
        interpreter = Interpreter(model_content=content, num_threads=1, experimental_op_resolver_type=resolver)
        try:
            interpreter.allocate_tensors()
            rng = np.random.default_rng(0)
            for detail in interpreter.get_input_details():
                shape, dtype = detail["shape"], detail["dtype"]
                floating = np.issubdtype(dtype, np.floating)
                value = rng.standard_normal(shape).astype(dtype) if floating else np.zeros(shape, dtype)
                interpreter.set_tensor(detail["index"], value)
            interpreter.invoke()
            return interpreter
        except RuntimeError as e:
            if "XNNPACK" not in str(e) or resolver != OpResolverType.AUTO:
                raise


def _round_ms(interpreter, invokes):
    """The mean time of one invoke over `invokes` invokes, in ms."""
    start = time.perf_counter()
    for _ in range(invokes):
        interpreter.invoke()
    return 1000 * (time.perf_counter() - start) / invokes


def _invoke_ms(content, invokes, rounds):
    """Median over rounds of the mean time of one invoke, in ms."""
    interpreter = _ready_interpreter(content)
    return statistics.median(_round_ms(interpreter, invokes) for _ in range(rounds))
