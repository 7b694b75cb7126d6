"""The headless client against a small fake ComfyUI (HTTP + websocket, standard library only).

The fake follows ComfyUI's server facts: multipart uploads to /upload/image that rename on a
name clash, /prompt validation with per-node errors, websocket messages while the prompt runs,
/history/{id} and /view. It validates the loaders' file names like ComfyUI does, so a test
passes only if the client wrote the uploaded names into the right nodes.
"""
from __future__ import annotations

import base64
import email.parser
import email.policy
import hashlib
import json
import os
import struct
import subprocess
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

from comfyui_multitalk.client.cli import EXIT_FAILED, EXIT_OK, EXIT_REJECTED, EXIT_TIMEOUT, EXIT_USAGE, main

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 handshake constant


class FakeComfy:
    """State of the fake server: uploads, queued prompts, history, open websockets."""

    def __init__(self):
        self.uploads: dict[str, bytes] = {}
        self.prompts: dict[str, dict] = {}
        self.history: dict[str, dict] = {}
        self.files: dict[tuple[str, str, str], bytes] = {}
        self.sockets: dict[str, tuple] = {}  # client id -> (write file, lock)

    def send(self, client_id: str, kind: str, data: dict) -> None:
        self.send_frame(client_id, 0x1, json.dumps({"type": kind, "data": data}).encode())

    def send_frame(self, client_id: str, opcode: int, payload: bytes) -> None:
        wfile, lock = self.sockets[client_id]
        size = len(payload)
        header = bytes([0x80 | opcode]) + (bytes([size]) if size < 126 else b"\x7e" + struct.pack(">H", size))
        with lock:
            try:
                wfile.write(header + payload)
                wfile.flush()
            except (OSError, ValueError):  # the client has gone (after an error or a timeout)
                pass

    def validate(self, prompt: dict) -> dict:
        """ComfyUI-style node errors: loader files must exist in the input folder."""
        errors = {}
        for node_id, node in prompt.items():
            key = {"LoadImage": "image", "LoadAudio": "audio"}.get(node["class_type"])
            if key and node["inputs"].get(key) not in self.uploads:
                errors[node_id] = {"class_type": node["class_type"], "dependent_outputs": ["9"], "errors": [{
                    "type": "value_not_in_list", "message": "Value not in list",
                    "details": f"{key}: '{node['inputs'].get(key)}' not in {sorted(self.uploads)}"}]}
        return errors

    def execute(self, prompt_id: str, prompt: dict, client_id: str) -> None:
        """Run the fake prompt on a thread: messages, then history, then executing None."""
        send = lambda kind, data: self.send(client_id, kind, {**data, "prompt_id": prompt_id})  # noqa: E731
        send("execution_start", {})
        self.send(client_id, "status", {"status": {"exec_info": {"queue_remaining": 0}}})
        self.send(client_id, "executing", {"node": "5", "prompt_id": "someone-else"})  # must be ignored
        outputs, ok = {}, True
        for node_id in sorted(prompt, key=int):
            node = prompt[node_id]
            send("executing", {"node": node_id, "display_node": node_id})
            if node["class_type"] == "Hang":
                return  # never finishes: the client must time out
            if node["class_type"] == "Fail":
                send("execution_error", {"node_id": node_id, "node_type": "Fail", "exception_type": "ValueError",
                                         "exception_message": "Audio track 2 is 0.1 s long; give at least 1 s.",
                                         "traceback": [], "executed": []})
                ok = False
                break
            if node["class_type"] == "Sampler":
                for step in range(1, 4):
                    send("progress", {"value": step, "max": 3, "node": node_id})
                self.send_frame(client_id, 0x2, b"\x00\x00\x00\x01preview")  # binary preview: ignored
            if node["class_type"] == "SaveVideo":
                outputs[node_id] = self.save_outputs(prompt)
                send("executed", {"node": node_id, "output": outputs[node_id]})
        self.history[prompt_id] = {"outputs": outputs, "status": {"status_str": "success" if ok else "error",
                                                                   "completed": ok, "messages": []}}
        send("executing", {"node": None})

    def save_outputs(self, prompt: dict) -> dict:
        """A video whose bytes record which uploads the loaders used, plus a temp preview."""
        used = {nid: n["inputs"] for nid, n in prompt.items() if n["class_type"] in ("LoadImage", "LoadAudio")}
        self.files[("video", "clip_00001.mp4", "output")] = json.dumps(used, sort_keys=True).encode()
        self.files[("", "preview_1.png", "temp")] = b"png-bytes"
        return {"images": [{"filename": "clip_00001.mp4", "subfolder": "video", "type": "output"}],
                "animated": [True],
                "previews": [{"filename": "preview_1.png", "subfolder": "", "type": "temp"}]}


def make_handler(state: FakeComfy):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):  # keep test output quiet
            pass

        def reply(self, status: int, body) -> None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def body(self) -> bytes:
            return self.rfile.read(int(self.headers.get("Content-Length", 0)))

        def do_GET(self):
            url = urlparse(self.path)
            query = {k: v[0] for k, v in parse_qs(url.query).items()}
            if url.path == "/ws":
                return self.websocket(query["clientId"])
            if url.path.startswith("/history/"):
                prompt_id = url.path.rsplit("/", 1)[1]
                return self.reply(200, {prompt_id: state.history[prompt_id]} if prompt_id in state.history else {})
            if url.path == "/view":
                key = (query.get("subfolder", ""), query["filename"], query.get("type", "output"))
                return self.reply(200, state.files[key]) if key in state.files else self.reply(404, b"")
            self.reply(404, b"")

        def do_POST(self):
            if self.path == "/upload/image":
                return self.upload()
            if self.path == "/interrupt":
                self.body()
                return self.reply(200, b"")
            request = json.loads(self.body())
            prompt = request["prompt"]
            errors = state.validate(prompt)
            if errors:
                return self.reply(400, {"error": {"type": "prompt_outputs_failed_validation",
                                                  "message": "Prompt outputs failed validation", "details": "",
                                                  "extra_info": {}}, "node_errors": errors})
            prompt_id = str(uuid.uuid4())
            state.prompts[prompt_id] = prompt
            threading.Thread(target=state.execute, args=(prompt_id, prompt, request["client_id"]), daemon=True).start()
            self.reply(200, {"prompt_id": prompt_id, "number": 0, "node_errors": {}})

        def upload(self):
            head = f"Content-Type: {self.headers['Content-Type']}\r\n\r\n".encode()
            message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + self.body())
            parts = {p.get_param("name", header="content-disposition"): p for p in message.iter_parts()}
            name, data = parts["image"].get_filename(), parts["image"].get_payload(decode=True)
            stem, ext = os.path.splitext(name)
            counter = 1
            while name in state.uploads and state.uploads[name] != data:  # ComfyUI renames on a clash
                name, counter = f"{stem} ({counter}){ext}", counter + 1
            state.uploads[name] = data
            self.reply(200, {"name": name, "subfolder": "", "type": "input"})

        def websocket(self, client_id: str):
            accept = base64.b64encode(hashlib.sha1((self.headers["Sec-WebSocket-Key"] + WS_GUID).encode()).digest())
            self.send_response(101)
            self.send_header("Upgrade", "websocket")
            self.send_header("Connection", "Upgrade")
            self.send_header("Sec-WebSocket-Accept", accept.decode())
            self.end_headers()
            self.wfile.flush()
            state.sockets[client_id] = (self.wfile, threading.Lock())
            state.send(client_id, "status", {"status": {"exec_info": {"queue_remaining": 1}}, "sid": client_id})
            self.rfile.read(2)  # block until the client's close frame (or EOF)
            self.close_connection = True

    return Handler


@pytest.fixture()
def fake():
    state = FakeComfy()
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(state))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield state
    server.shutdown()
    server.server_close()


def workflow_file(tmp_path: Path, extra: dict | None = None) -> Path:
    """Two audio loaders listed out of order (10 before 2), one image loader, a sampler, a saver."""
    workflow = {
        "10": {"class_type": "LoadAudio", "inputs": {"audio": "old_b.wav"}, "_meta": {"title": "Speaker 2"}},
        "2": {"class_type": "LoadAudio", "inputs": {"audio": "old_a.wav"}, "_meta": {"title": "Speaker 1"}},
        "1": {"class_type": "LoadImage", "inputs": {"image": "old.png"}},
        "20": {"class_type": "Sampler", "inputs": {"steps": 40, "seed": 0, "audio": ["2", 0]}},
        "30": {"class_type": "SaveVideo", "inputs": {"video": ["20", 0], "filename_prefix": "video/clip"}},
        **(extra or {}),
    }
    path = tmp_path / "wf_api.json"
    path.write_text(json.dumps(workflow))
    return path


def inputs(tmp_path: Path) -> tuple[Path, Path, Path]:
    """An image and two audio files; both audio files share one name, as uploads often do."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    image, first, second = tmp_path / "ref.png", tmp_path / "a" / "voice.wav", tmp_path / "b" / "voice.wav"
    image.write_bytes(b"image")
    first.write_bytes(b"first speaker")
    second.write_bytes(b"second speaker")
    return image, first, second


def test_success_uploads_substitutes_and_downloads(fake, tmp_path, capsys):
    image, first, second = inputs(tmp_path)
    out = tmp_path / "out"
    code = main(["--server", fake.url, str(workflow_file(tmp_path)), "--image", str(image), "--audio", str(first),
                 "--audio", str(second), "--set", "20.steps=3", "--set", "Speaker 1.start=0.5",
                 "--output-dir", str(out), "--timeout", "30"])
    printed = capsys.readouterr()
    assert code == EXIT_OK, printed.err
    # Node-id order: the first --audio goes to node 2, the second to node 10 (renamed on upload).
    used = json.loads((out / "clip_00001.mp4").read_text())
    assert used == {"1": {"image": "ref.png"}, "2": {"audio": "voice.wav", "start": 0.5},
                    "10": {"audio": "voice (1).wav"}}
    assert fake.uploads == {"ref.png": b"image", "voice.wav": b"first speaker", "voice (1).wav": b"second speaker"}
    assert (out / "preview_1.png").read_bytes() == b"png-bytes"
    (prompt,) = fake.prompts.values()
    assert prompt["20"]["inputs"] == {"steps": 3, "seed": 0, "audio": ["2", 0]}  # --set parsed as JSON
    assert printed.out.split() == [str(out / "clip_00001.mp4"), str(out / "preview_1.png")]
    lines = printed.err.splitlines()
    assert any("node 20 Sampler: 3/3" in line for line in lines)
    assert any("node 30 SaveVideo: done" in line for line in lines)
    assert not any("node 5" in line for line in lines)  # another prompt's message


def test_a_second_download_never_replaces_a_file_already_there(fake, tmp_path, capsys):
    image, first, second = inputs(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    (out / "clip_00001.mp4").write_bytes(b"the user's own file")
    code = main(["--server", fake.url, str(workflow_file(tmp_path)), "--image", str(image), "--audio", str(first),
                 "--audio", str(second), "--output-dir", str(out), "--no-previews"])
    printed = capsys.readouterr()
    assert code == EXIT_OK, printed.err
    assert (out / "clip_00001.mp4").read_bytes() == b"the user's own file"
    (saved,) = printed.out.split()
    assert saved == str(out / "clip_00001_00001_.mp4")  # numbered beside it, ComfyUI-style
    assert json.loads(Path(saved).read_text())["1"] == {"image": "ref.png"}


def test_explicit_targets_and_no_previews(fake, tmp_path, capsys):
    image, first, second = inputs(tmp_path)
    out = tmp_path / "out"
    code = main(["--server", fake.url, str(workflow_file(tmp_path)), "--image", str(image),
                 "--audio", f"Speaker 2={first}", "--audio", f"2={second}", "--output-dir", str(out),
                 "--no-previews"])
    assert code == EXIT_OK, capsys.readouterr().err
    used = json.loads((out / "clip_00001.mp4").read_text())
    assert used["10"] == {"audio": "voice.wav"} and used["2"] == {"audio": "voice (1).wav"}
    assert sorted(p.name for p in out.iterdir()) == ["clip_00001.mp4"]


def test_validation_error_prints_node_errors(fake, tmp_path, capsys):
    image, first, _ = inputs(tmp_path)
    # One audio file for two LoadAudio nodes: node 10 keeps 'old_b.wav', which the server lacks.
    code = main(["--server", fake.url, str(workflow_file(tmp_path)), "--image", str(image), "--audio", str(first),
                 "--output-dir", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == EXIT_REJECTED
    assert "Prompt outputs failed validation" in err
    assert "node 10 (LoadAudio):" in err and "Value not in list: audio: 'old_b.wav'" in err
    assert "node 2 (" not in err and not (tmp_path / "out").exists()


def test_execution_error_prints_message_and_node(fake, tmp_path, capsys):
    image, first, second = inputs(tmp_path)
    wf = workflow_file(tmp_path, {"25": {"class_type": "Fail", "inputs": {}}})
    code = main(["--server", fake.url, str(wf), "--image", str(image), "--audio", str(first), "--audio", str(second),
                 "--output-dir", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == EXIT_FAILED
    assert "Execution failed in node 25 (Fail) [ValueError]" in err
    assert "Audio track 2 is 0.1 s long" in err


def test_timeout(fake, tmp_path, capsys):
    image, first, second = inputs(tmp_path)
    wf = workflow_file(tmp_path, {"25": {"class_type": "Hang", "inputs": {}}})
    start = time.monotonic()
    code = main(["--server", fake.url, str(wf), "--image", str(image), "--audio", str(first), "--audio", str(second),
                 "--timeout", "1.5"])
    assert code == EXIT_TIMEOUT and time.monotonic() - start < 10
    assert "no result within 1.5 s" in capsys.readouterr().err


def test_usage_errors_before_any_upload(fake, tmp_path, capsys):
    image, first, second = inputs(tmp_path)
    wf = str(workflow_file(tmp_path))
    assert main(["--server", fake.url, wf, "--image", str(image), "--image", str(image)]) == EXIT_USAGE
    assert "2 --image file(s) left for 1 LoadImage node(s)" in capsys.readouterr().err
    assert main(["--server", fake.url, wf, "--audio", str(tmp_path / "missing.wav")]) == EXIT_USAGE
    assert "missing.wav" in capsys.readouterr().err
    assert main(["--server", fake.url, wf, "--set", "20.audio=3"]) == EXIT_USAGE
    assert "wired to node 2" in capsys.readouterr().err
    assert fake.uploads == {} and fake.prompts == {}


def test_unreachable_server(tmp_path, capsys):
    code = main(["--server", "http://127.0.0.1:9", str(workflow_file(tmp_path)), "--timeout", "5"])
    assert code == 5 and "Cannot reach ComfyUI at http://127.0.0.1:9" in capsys.readouterr().err


def test_module_entry_point(fake, tmp_path):
    image, first, second = inputs(tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "comfyui_multitalk.client", "--server", fake.url, str(workflow_file(tmp_path)),
         "--image", str(image), "--audio", str(first), "--audio", str(second), "--output-dir", str(tmp_path / "o")],
        capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "o" / "clip_00001.mp4").is_file()
