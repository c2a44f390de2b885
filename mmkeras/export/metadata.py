"""TFLite metadata inside every .tflite, as the ecosystem reads it.

Android Studio's model binding, the TFLite support and task libraries, MediaPipe's loaders and
model viewers read the `TFLITE_METADATA` flatbuffer inside the model file and its associated
files (a zip appended to it), not our `.json`. This writes that metadata with MediaPipe's
metadata library (the `mediapipe` package): the model's name, description, version, author
and licence from the config; per input its name, description (what to feed, how it was
preprocessed), content type (image with colour space and normalisation, or feature), value
range and, for text, the WordPiece vocabulary as an associated file; per output its labels
file. Tensor shapes, dtypes and int8 scales stay where TFLite keeps them, in the model's own
tensors; the SignatureDef is untouched.

MediaPipe's wheels (checked: 0.10.35, 1.0.1, 1.2.2, 1.2.3, the newest here) ship the metadata writer without the
native module it imports for one function, `GetMinimumMetadataParserVersion`
(`mediapipe.tasks.cc.metadata.python._pywrap_metadata_version`): importing the writer fails
with ModuleNotFoundError. `_parser_version_module` provides that one function, computed from the
schema's documented version history, before the writer is imported; everything else is the
library's own code. A test fails when a MediaPipe release ships the module again.
"""
import json
import os
import sys
import types

from mmkeras.names import features_key, presence_key
from mmkeras.outputs import output_type

_VERSION_MODULE = "mediapipe.tasks.cc.metadata.python._pywrap_metadata_version"


def _minimum_parser_version(metadata_buffer):
    """The lowest metadata parser version that reads every field `metadata_buffer` uses.

    The schema's history (metadata_schema.fbs): 1.0.1 VOCABULARY files; 1.1.0 tokenizer process
    units and subgraph process units; 1.2.0 tensor groups; 1.2.1 regex tokenizer; 1.3.0 audio
    properties; 1.4.0 ScaNN index files; 1.4.1 associated file versions; 1.5.0 custom metadata.
    """
    from mediapipe.tasks.metadata import metadata_schema_py_generated as fb

    model = fb.ModelMetadataT.InitFromObj(fb.ModelMetadata.GetRootAsModelMetadata(metadata_buffer, 0))
    found = [(1, 0, 0)]

    def visit(obj):
        if isinstance(obj, list):
            for item in obj:
                visit(item)
            return
        if not hasattr(obj, "__dict__"):
            return
        if isinstance(obj, fb.AssociatedFileT):
            found.append({fb.AssociatedFileType.VOCABULARY: (1, 0, 1),
                          fb.AssociatedFileType.SCANN_INDEX_FILE: (1, 4, 0)}.get(obj.type, (1, 0, 0)))
            if obj.version:
                found.append((1, 4, 1))
        if isinstance(obj, fb.ProcessUnitT):
            found.append({fb.ProcessUnitOptions.BertTokenizerOptions: (1, 1, 0),
                          fb.ProcessUnitOptions.SentencePieceTokenizerOptions: (1, 1, 0),
                          fb.ProcessUnitOptions.RegexTokenizerOptions: (1, 2, 1)}.get(obj.optionsType, (1, 0, 0)))
        if isinstance(obj, fb.ContentT) and obj.contentPropertiesType == fb.ContentProperties.AudioProperties:
            found.append((1, 3, 0))
        if isinstance(obj, fb.SubGraphMetadataT):
            if obj.inputProcessUnits or obj.outputProcessUnits:
                found.append((1, 1, 0))
            if obj.inputTensorGroups or obj.outputTensorGroups:
                found.append((1, 2, 0))
            if obj.customMetadata:
                found.append((1, 5, 0))
        for value in vars(obj).values():
            visit(value)

    visit(model)
    return ".".join(map(str, max(found)))


def _install_parser_version_module():
    """Register the missing module (and its missing parent packages) with our one function."""
    parts = _VERSION_MODULE.split(".")
    for depth in range(3, len(parts) + 1):  # mediapipe.tasks exists; mediapipe.tasks.cc and below do not
        name = ".".join(parts[:depth])
        if name not in sys.modules:
            module = types.ModuleType(name)
            if depth < len(parts):
                module.__path__ = []  # a package, so `from a.b import c` resolves through it
            sys.modules[name] = module
            setattr(sys.modules[".".join(parts[:depth - 1])], parts[depth - 1], module)
    sys.modules[_VERSION_MODULE].GetMinimumMetadataParserVersion = _minimum_parser_version


def shipped_parser_version_module():
    """Whether the installed MediaPipe ships the native module itself (then nothing stands in for it).

    Looked up as a file, not imported: once the stand-in is registered, an import finds that.
    """
    import glob
    import importlib.util

    root = os.path.dirname(importlib.util.find_spec("mediapipe").origin)
    folder = os.path.join(root, *_VERSION_MODULE.split(".")[1:-1])
    return bool(glob.glob(os.path.join(glob.escape(folder), f"{_VERSION_MODULE.rsplit('.', 1)[1]}*")))


def _library():
    """MediaPipe's metadata modules (metadata, metadata_info, the schemas), importable."""
    if _VERSION_MODULE not in sys.modules and not shipped_parser_version_module():
        import mediapipe.tasks  # noqa: F401  (the package the stand-in modules hang from)

        _install_parser_version_module()
    from mediapipe.tasks.metadata import metadata_schema_py_generated as fb
    from mediapipe.tasks.metadata import schema_py_generated as schema_fb
    from mediapipe.tasks.python.metadata import metadata
    from mediapipe.tasks.python.metadata.metadata_writers import metadata_info

    return types.SimpleNamespace(fb=fb, schema_fb=schema_fb, metadata=metadata, info=metadata_info)


def _input_entries(lib, ctx, app, tensors):
    """Signature input name → (TensorMetadataT, {associated file name: bytes}), presence flags included."""
    entries = {}
    for h, described in zip(ctx.prep.handlers, (i for i in app["inputs"] if i["type"] != "presence")):
        name = described["name"]
        entries[name] = h.tflite_metadata(lib, name, described, tensors[name])
        flag = presence_key(h.name)
        entries[flag] = (lib.info.TensorMd(name=flag, description=f"1.0 when {h.name} is present, 0.0 when absent "
                                                                     "(then fill its input with zeros)",
                                           min_values=[0.0], max_values=[1.0]).create_metadata(), {})
    return entries


def _output_entries(lib, ctx, tensors):
    """Signature output name → (TensorMetadataT, {associated file name: bytes}), from each output type."""
    entries = {}
    for o in ctx.cfg.outputs:
        entries[o.name] = output_type(o).tflite_metadata(lib, o.name, ctx.prep.labels.get(o.name), tensors[o.name])
    return entries


def _subgraph_order(runner, kind):
    """Signature names of the model's subgraph inputs (or outputs), in the subgraph's tensor order."""
    by_index = {d["index"]: name for name, d in getattr(runner, f"{kind}_details").items()}
    listed = runner.interpreter.get_input_details() if kind == "input" else runner.interpreter.get_output_details()
    return [by_index[d["index"]] for d in listed]


def _populate(lib, tflite_bytes, general, inputs, outputs, runner):
    """Write the metadata flatbuffer and associated files into the model → new model bytes.

    `inputs` and `outputs` map signature names to (TensorMetadataT, files); the metadata lists
    them in the subgraph's tensor order, as the schema requires.
    """
    import flatbuffers

    fb = lib.fb
    subgraph = fb.SubGraphMetadataT()
    subgraph.inputTensorMetadata = [inputs[n][0] for n in _subgraph_order(runner, "input")]
    subgraph.outputTensorMetadata = [outputs[n][0] for n in _subgraph_order(runner, "output")]
    model = general.create_metadata()
    model.subgraphMetadata = [subgraph]
    builder = flatbuffers.Builder(0)
    builder.Finish(model.Pack(builder), lib.metadata.MetadataPopulator.METADATA_FILE_IDENTIFIER)
    populator = lib.metadata.MetadataPopulator.with_model_buffer(bytearray(tflite_bytes))
    populator.load_metadata_buffer(builder.Output())
    files = {name: content for entries in (inputs, outputs) for _, f in entries.values() for name, content in f.items()}
    if files:
        populator.load_associated_file_buffers(files)
    populator.populate()
    return bytes(populator.get_model_buffer())


def _general(lib, ctx, what):
    export = ctx.cfg.export
    description = export.description or f"mmkeras model '{ctx.cfg.name}'"
    return lib.info.GeneralMd(name=ctx.cfg.name, version=export.version or None,
                              description=f"{description} ({what})", author=export.author or None,
                              licenses=export.license or None)


def with_metadata(ctx, variant, tflite_bytes, app, runner):
    """A variant's model bytes with TFLite metadata written in.

    Args:
        ctx: the run's ExportContext.
        variant: the quantisation variant (float32, int8, ...), named in the description.
        tflite_bytes: the converted model.
        app: the variant's app description (`export.tflite.metadata`), whose facts the metadata repeats.
        runner: the converted model's LiteRTRunner (its tensors and their order).
    """
    lib = _library()
    described = runner.describe()
    tensors = {**described["inputs"], **described["outputs"]}
    return _populate(lib, tflite_bytes, _general(lib, ctx, f"{variant} TFLite variant, batch 1"),
                     _input_entries(lib, ctx, app, tensors), _output_entries(lib, ctx, tensors), runner)


def frontend_with_metadata(ctx, input_name, tflite_bytes):
    """An input's float front-end model with its metadata: the raw input as its handler describes it
    (`frontend_tflite_metadata`: a waveform with its rate, raw numeric columns), features out."""
    from mmkeras.runtime import LiteRTRunner

    lib = _library()
    info = lib.info
    runner = LiteRTRunner(tflite_bytes)
    h = next(h for h in ctx.prep.handlers if h.name == input_name)
    md = h.frontend_tflite_metadata(lib)

    features = features_key(input_name)
    outputs = {features: (info.TensorMd(name=features, description=f"what every {ctx.cfg.name} variant takes as "
                                                                    f"{features}").create_metadata(), {})}
    return _populate(lib, tflite_bytes, _general(lib, ctx, f"{input_name} front-end, float32, batch 1"),
                     {input_name: (md, {})}, outputs, runner)


def read_metadata(tflite_bytes):
    """(the metadata as MediaPipe's displayer shows it, as a dict; the associated files' names)."""
    lib = _library()
    displayer = lib.metadata.MetadataDisplayer.with_model_buffer(bytearray(tflite_bytes))
    return json.loads(displayer.get_metadata_json()), sorted(displayer.get_packed_associated_file_list())


def associated_file(tflite_bytes, name):
    """One associated file's bytes, read back from a model with metadata."""
    lib = _library()
    return lib.metadata.MetadataDisplayer.with_model_buffer(bytearray(tflite_bytes)).get_associated_file_buffer(name)

