"""models/output_files: outputs never land on a file the run reads, existing outputs are
numbered (or replaced only when asked), and only containers the video writer can produce pass."""
from __future__ import annotations

import os

import pytest
import torch

from comfyui_multitalk.models.errors import MultiTalkError, OutputPathError
from comfyui_multitalk.models.output_files import (atomic_write, check_output, note_input, overwrite_allowed,
                                                   run_scope)
from comfyui_multitalk.models.video_io import read_video_frames, write_mp4


@pytest.fixture(autouse=True)
def _fresh_record():
    with run_scope():
        yield


def _user_file(path, data: bytes = b"the user's own bytes") -> bytes:
    path.write_bytes(data)
    return data


def test_an_input_is_refused_naming_both(tmp_path):
    image = tmp_path / "me.png"
    original = _user_file(image)
    note_input(str(image))
    with pytest.raises(OutputPathError) as caught:
        check_output(str(image), kind=None)
    text = str(caught.value)
    assert f"The output '{image}' is the file '{image}'" in text and "Choose another output name" in text
    assert isinstance(caught.value, MultiTalkError) and isinstance(caught.value, ValueError)
    with pytest.raises(OutputPathError):  # overwriting on request does not lift it
        check_output(str(image), overwrite=True, kind=None)
    assert image.read_bytes() == original


def test_links_to_an_input_are_refused(tmp_path):
    voice = tmp_path / "voice.mp4"
    original = _user_file(voice)
    note_input(str(voice))
    (tmp_path / "soft.mp4").symlink_to(voice)
    os.link(voice, tmp_path / "hard.mp4")
    for link in ("soft.mp4", "hard.mp4"):
        with pytest.raises(OutputPathError, match=rf"'{tmp_path / link}' is the file '{voice}' \(the same file under "
                                                  "another name, through a link\\)"):
            check_output(str(tmp_path / link), overwrite=True)
    # Noting through a link protects the target too.
    other = tmp_path / "other.mp4"
    _user_file(other)
    (tmp_path / "via.mp4").symlink_to(other)
    note_input(str(tmp_path / "via.mp4"))
    with pytest.raises(OutputPathError, match="other.mp4"):
        check_output(str(other), overwrite=True)
    assert voice.read_bytes() == original


def test_a_noted_folder_protects_the_files_in_it(tmp_path):
    folder = tmp_path / "wav2vec"
    folder.mkdir()
    original = _user_file(folder / "model.safetensors")
    note_input(str(folder))
    with pytest.raises(OutputPathError, match="model.safetensors"):
        check_output(str(folder / "model.safetensors"), overwrite=True, kind=None)
    assert check_output(str(folder / "new.mp4")) == str(folder / "new.mp4")
    assert (folder / "model.safetensors").read_bytes() == original


def test_existing_outputs_are_numbered_unless_overwriting(tmp_path):
    talk = tmp_path / "talk.mp4"
    assert check_output(str(talk)) == str(talk)  # free: as given
    original = _user_file(talk)
    assert check_output(str(talk)) == str(tmp_path / "talk_00001_.mp4")
    (tmp_path / "talk_00001_.mp4").write_bytes(b"x")
    assert check_output(str(talk)) == str(tmp_path / "talk_00002_.mp4")
    assert check_output(str(tmp_path / "talk_00001_.mp4")) == str(tmp_path / "talk_00002_.mp4")  # counts on
    assert check_output(str(talk), overwrite=True) == str(talk)
    with run_scope(overwrite=True):  # the command line's --overwrite, for writers without an option
        assert overwrite_allowed() and check_output(str(talk)) == str(talk)
    assert not overwrite_allowed() and check_output(str(talk)) == str(tmp_path / "talk_00002_.mp4")
    assert talk.read_bytes() == original


@pytest.mark.parametrize("suffix", [".mp4", ".mov", ".mkv", ".MP4"])
def test_accepted_containers_are_ones_the_writer_really_writes(tmp_path, suffix):
    path = check_output(str(tmp_path / f"clip{suffix}"))
    frames = torch.rand(5, 32, 48, 3, generator=torch.Generator().manual_seed(0))
    write_mp4(path, frames, 25.0, {"waveform": 0.1 * torch.randn(1, 1, 3200), "sample_rate": 16000})
    count, fps, _ = read_video_frames(path)
    assert (count, fps) == (5, 25.0)


@pytest.mark.parametrize("name", ["out.webm", "voice.wav", "anim.gif", "clip.avi", "talk"])
def test_other_containers_are_refused_with_what_to_use(tmp_path, name):
    with pytest.raises(OutputPathError) as caught:
        check_output(str(tmp_path / name), kind="video")
    text = str(caught.value)
    shown = f"'{os.path.splitext(name)[1]}'" if "." in name else "no extension"
    assert f"Cannot write the video '{tmp_path / name}': {shown} is not a container" in text
    assert "Use .mp4 (or .mov, .mkv)." in text
    assert not (tmp_path / name).exists()
    with pytest.raises(OutputPathError, match=r"'.jpg' is not a container.*Use .png."):
        check_output(str(tmp_path / "preview.jpg"), kind="image")
    assert check_output(str(tmp_path / name), kind=None) == str(tmp_path / name)  # no container rule


def test_folders_that_cannot_hold_the_output(tmp_path):
    with pytest.raises(OutputPathError, match=rf"'{tmp_path}' is a folder: give a file name inside it"):
        check_output(str(tmp_path))
    original = _user_file(tmp_path / "notes.txt")
    with pytest.raises(OutputPathError, match=r"'.*notes.txt' is a file, not a folder"):
        check_output(str(tmp_path / "notes.txt" / "sub" / "talk.mp4"))
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if not os.access(locked, os.W_OK):  # root may write anywhere
            with pytest.raises(OutputPathError, match="no permission to write in"):
                check_output(str(locked / "new" / "talk.mp4"))
    finally:
        locked.chmod(0o700)
    with pytest.raises(OutputPathError, match="No output file given"):
        check_output("  ")
    assert (tmp_path / "notes.txt").read_bytes() == original


def test_deleted_inputs_and_extra_reads(tmp_path):
    gone = tmp_path / "gone.png"
    _user_file(gone)
    note_input(str(gone))
    gone.unlink()
    assert check_output(str(gone), kind="image") == str(gone)  # nothing left to lose
    window = tmp_path / "w0.safetensors"
    original = _user_file(window)
    with pytest.raises(OutputPathError, match="w0.safetensors"):
        check_output(str(window), overwrite=True, kind=None, also_reads=[str(window)])
    assert window.read_bytes() == original


def test_atomic_write_keeps_the_old_file_until_the_new_one_is_whole(tmp_path):
    target = tmp_path / "talk.mp4"
    original = _user_file(target)
    with pytest.raises(RuntimeError):
        with atomic_write(str(target)) as temporary:
            assert temporary.endswith(".mp4") and os.path.dirname(temporary) == str(tmp_path)
            with open(temporary, "wb") as handle:
                handle.write(b"half")
            raise RuntimeError("interrupted")
    assert target.read_bytes() == original and sorted(os.listdir(tmp_path)) == ["talk.mp4"]
    with atomic_write(str(target)) as temporary:
        with open(temporary, "wb") as handle:
            handle.write(b"new")
    assert target.read_bytes() == b"new" and sorted(os.listdir(tmp_path)) == ["talk.mp4"]


def test_the_readers_record_what_they_read(tmp_path):
    """Model files (the shared weight reader), audio files and wav2vec folders read by the pack
    become outputs no writer may take, however the reader was reached."""
    import soundfile
    from safetensors.torch import save_file

    from comfyui_multitalk.models import load_dit
    from comfyui_multitalk.models.audio import read_audio_file
    from comfyui_multitalk.models.dit.tiny import random_dit_state_dict, tiny_dit_config

    model = tmp_path / "wan.safetensors"
    save_file(random_dit_state_dict(tiny_dit_config(), seed=1), str(model))
    voice = tmp_path / "voice.wav"
    soundfile.write(str(voice), torch.zeros(1600).numpy(), 16000)
    before = {p: p.read_bytes() for p in (model, voice)}
    for path in (model, voice):
        with pytest.raises(OutputPathError):  # nothing read yet: only the type is wrong
            check_output(str(path), kind="video")
        assert check_output(str(path), kind=None) != str(path)  # exists: numbered, not refused
    load_dit(str(model), num_heads=2, text_len=16)
    read_audio_file(str(voice))
    for path in (model, voice):
        with pytest.raises(OutputPathError, match=f"is the file '{path}'"):
            check_output(str(path), kind=None, overwrite=True)
    assert {p: p.read_bytes() for p in (model, voice)} == before
