"""The names mmkeras derives from the configured ones: model inputs and outputs, serving and
TFLite signature keys. They are user contract (apps and scripts feed and read them), so each
is spelled here once; importing this module costs nothing (no TensorFlow).

Example:
    presence_key("image")              # "image_present": 1 present, 0 absent
    features_key("speech")             # "speech_features": what the audio front-end computes
    aux_output_name("label", "image")  # "label_from_image": the auxiliary head
"""


def presence_key(name):
    """Model and signature input holding input `name`'s presence flag (1 present, 0 absent)."""
    return f"{name}_present"


def features_key(name):
    """TFLite input name of what input `name`'s float front-end computes (e.g. `speech_features`)."""
    return f"{name}_features"


def aux_output_name(output, modality):
    """Name of the auxiliary head that predicts `output` from `modality` alone."""
    return f"{output}_from_{modality}"


def derived_names(inputs, outputs):
    """Every name derived from the configured input and output names → what it names (for clashes)."""
    derived = {}
    for i in inputs:
        derived[presence_key(i)] = f"the presence flag of input '{i}'"
        derived[features_key(i)] = f"the TFLite front-end output of input '{i}'"
        for o in outputs:
            derived[aux_output_name(o, i)] = f"the auxiliary head of output '{o}' on input '{i}'"
    return derived


def probabilities_key(output):
    """TF Serving output holding a category or multilabel output's probabilities."""
    return f"{output}_probabilities"


def label_key(output):
    """TF Serving output holding a category output's most probable label (a string)."""
    return f"{output}_label"


def labels_file(output):
    """TFLite associated file holding an output's labels, one per line in index order."""
    return f"{output}_labels.txt"


def vocab_file(input_name):
    """TFLite associated file holding a text input's WordPiece vocabulary, one token per line (line = id)."""
    return f"{input_name}_vocab.txt"
