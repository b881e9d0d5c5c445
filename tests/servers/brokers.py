"""Private Kafka and Redis instances a fault test may stop and start at will.

The shared services on 9092 and 6379 serve every test running on the machine, so a test
that takes a broker or Redis down starts its own: a single-node KRaft Kafka from the jars
``scripts/services`` fetched (``.cache/kafka/libs``), or Debian's ``redis-server``, on free
loopback ports with their data in a temporary directory. ``stop()`` and ``start()`` keep
the ports and the data, as a restart of the real service would.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

from kafka.admin import KafkaAdminClient
from kafka.errors import KafkaError

ROOT = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"
KAFKA_LIBS = Path(os.environ.get("NOTIFLOW_CACHE_DIR", ROOT / ".cache")) / "kafka" / "libs"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def port_open(port: int) -> bool:
    try:
        socket.create_connection((HOST, port), timeout=1).close()
    except OSError:
        return False
    return True


class Service:
    """A server process started by the test, in its own session (so it outlives nothing)."""

    name = "service"
    start_timeout = 60.0

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        raise NotImplementedError

    def ready(self) -> bool:
        raise NotImplementedError

    def log(self) -> str:
        return (self.workdir / "console.log").read_text(errors="replace")[-4000:]

    def start(self) -> None:
        if self.running:
            return
        with (self.workdir / "console.log").open("ab") as console:
            self.process = subprocess.Popen(
                self.command(),
                cwd=self.workdir,
                stdout=console,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        deadline = time.monotonic() + self.start_timeout
        while not self.ready():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"private {self.name} did not start:\n{self.log()}")
            time.sleep(0.5)

    def stop(self) -> None:
        """SIGTERM (a clean shutdown), SIGKILL after 30 s; returns once the port is closed."""
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        deadline = time.monotonic() + 10
        while port_open(self.port) and time.monotonic() < deadline:
            time.sleep(0.2)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


class PrivateRedis(Service):
    """``redis-server`` without persistence, like the shared one: a restart loses its data."""

    name = "redis"
    start_timeout = 20.0

    def url(self, db: int = 0) -> str:
        return f"redis://{HOST}:{self.port}/{db}"

    def command(self) -> list[str]:
        return [
            "redis-server",
            "--bind",
            HOST,
            "--port",
            str(self.port),
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.workdir),
        ]

    def ready(self) -> bool:
        try:
            with socket.create_connection((HOST, self.port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False


class PrivateKafka(Service):
    """A single-node KRaft broker and controller, formatted once in ``workdir``."""

    name = "kafka"
    start_timeout = 180.0  # a JVM on a loaded 2-core machine takes a minute or more

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir)
        if not (KAFKA_LIBS / ".kafka-version").exists():
            raise RuntimeError(f"no Kafka jars in {KAFKA_LIBS}: run `scripts/services start kafka`")
        self.controller_port = free_port()
        self.bootstrap = f"{HOST}:{self.port}"
        self.config = workdir / "server.properties"
        self.config.write_text(
            "\n".join(
                [
                    "process.roles=broker,controller",
                    "node.id=1",
                    f"controller.quorum.bootstrap.servers={HOST}:{self.controller_port}",
                    f"listeners=PLAINTEXT://{self.bootstrap},CONTROLLER://{HOST}:{self.controller_port}",
                    f"advertised.listeners=PLAINTEXT://{self.bootstrap},CONTROLLER://{HOST}:{self.controller_port}",
                    "controller.listener.names=CONTROLLER",
                    "inter.broker.listener.name=PLAINTEXT",
                    "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
                    f"log.dirs={workdir / 'data'}",
                    "num.partitions=4",
                    "offsets.topic.replication.factor=1",
                    "offsets.topic.num.partitions=4",
                    "transaction.state.log.replication.factor=1",
                    "transaction.state.log.min.isr=1",
                    "share.coordinator.state.topic.replication.factor=1",
                    "share.coordinator.state.topic.min.isr=1",
                    "group.initial.rebalance.delay.ms=0",
                    "",
                ]
            )
        )
        (workdir / "log4j2.properties").write_text(
            "status = warn\n"
            "appender.file.type = File\n"
            "appender.file.name = file\n"
            f"appender.file.fileName = {workdir / 'server.log'}\n"
            "appender.file.layout.type = PatternLayout\n"
            "appender.file.layout.pattern = [%d] %p %m (%c)%n\n"
            "rootLogger.level = warn\n"
            "rootLogger.appenderRef.file.ref = file\n"
        )
        cluster_id = self._storage_tool("random-uuid").strip()
        self._storage_tool("format", "--standalone", "-t", cluster_id, "-c", str(self.config))

    def _storage_tool(self, *args: str) -> str:
        command = [
            "java",
            "-Dlog4j2.level=warn",
            "-cp",
            f"{KAFKA_LIBS}/*",
            "kafka.tools.StorageTool",
        ]
        return subprocess.run([*command, *args], check=True, capture_output=True, text=True).stdout

    def command(self) -> list[str]:
        return [
            "java",
            "-Xmx256m",
            "-Xms256m",
            "-XX:+UseSerialGC",
            "-Djava.awt.headless=true",
            f"-Dkafka.logs.dir={self.workdir}",
            f"-Dlog4j2.configurationFile={self.workdir / 'log4j2.properties'}",
            "-cp",
            f"{KAFKA_LIBS}/*",
            "kafka.Kafka",
            str(self.config),
        ]

    def ready(self) -> bool:
        if not port_open(self.port):
            return False
        try:
            admin = KafkaAdminClient(bootstrap_servers=[self.bootstrap], request_timeout_ms=5000)
        except KafkaError:
            return False
        try:
            admin.list_topics()
        except KafkaError:
            return False
        finally:
            admin.close()
        return True
