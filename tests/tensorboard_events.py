"""Read a run's TensorBoard folder back (tensorboard's own reader): scalar, text and hyper-parameter tags."""

from pathlib import Path


def tags(folder: Path) -> dict[str, list[str]]:
    """{"scalars": [...], "text": [...], "hparams": [...] (hyper-parameter names)} of `folder`."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    events = EventAccumulator(str(folder), size_guidance={"tensors": 0, "scalars": 0})
    events.Reload()
    hparams = []
    for content in events.PluginTagToContent("hparams").values():
        data = plugin_data_pb2.HParamsPluginData.FromString(content)
        if data.HasField("session_start_info"):
            hparams = sorted(data.session_start_info.hparams)
    found = events.Tags()
    texts = [t.removesuffix("/text_summary") for t in found["tensors"]]  # add_text(tag) is stored as tag/text_summary
    return {"scalars": found["scalars"], "text": texts, "hparams": hparams}


def text(folder: Path, tag: str) -> list[str]:
    """Every text logged under `tag`, in step order."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(folder), size_guidance={"tensors": 0})
    events.Reload()
    return [e.tensor_proto.string_val[0].decode() for e in events.Tensors(tag + "/text_summary")]
