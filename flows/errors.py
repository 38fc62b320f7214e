"""The named failures of the pipeline: each says what failed, where, and what to do."""

import signal


class VamosJuntosError(Exception):
    """Base of every error the pipeline raises on purpose."""


class ConfigurationError(VamosJuntosError):
    """A setting is missing or inconsistent."""


class PrefectServerError(VamosJuntosError):
    """Prefect's temporary API server, which a local run starts, stopped or did not answer."""


class SourceUnavailable(VamosJuntosError):
    """A source (IBGE API, MongoDB) cannot be reached at all."""


class SourceError(VamosJuntosError):
    """A source answered, but with an error or a body that breaks its contract."""


class WorkerFailed(VamosJuntosError):
    """A helper process of a step (e.g. an encoder of the MongoDB extraction) failed or exited."""


class ReconciliationError(VamosJuntosError):
    """Counts that must match do not: records would be lost or duplicated."""


class QualityGateFailed(VamosJuntosError):
    """A data-quality expectation between zones was breached; the next zone was not replaced."""


class LakeError(VamosJuntosError):
    """The lake holds something unexpected (missing manifest, checksum mismatch, ...)."""


class DamagedLakeFile(LakeError, ValueError):
    """A JSON file the pipeline writes whole (a manifest, a checkpoint, a record) is not the object it wrote:
    it was changed outside the pipeline. A ValueError as well: a reader that distrusts such a file and goes
    on (a damaged checkpoint: that run is not resumed) catches it as it catches bad JSON. Not retried: the
    file reads the same the next time."""

    # The file, and what it holds instead, where the reader said (manifest_cas.damaged)
    path: str | None = None
    what: str | None = None
    exit_code = 5  # as ChecksumMismatch's: a Kubernetes Job's runner raises it again, so it is not retried

    def briefly(self) -> str:
        """`<file> is damaged (<what it holds>)`, for a message that gives its own way out."""
        if self.path is None:
            return f"a lake file is damaged ({self})"
        return f"{self.path} is damaged ({self.what})"


class ManifestUnsettled(LakeError, OSError):
    """A manifest on S3 kept changing while being read. An OSError as well: the commit's tidying treats it
    as the storage error it is (a later commit tries again)."""


class CommitConflict(LakeError):
    """Another writer committed the same unit after this one started: this run was not committed."""


class AnswerError(VamosJuntosError):
    """An answer is not a value people can be given (e.g. an average that overflowed to Infinity)."""


class ChecksumMismatch(LakeError):
    """A committed file no longer matches the sha256 its manifest recorded: it changed after the commit.
    Retrying cannot help."""

    # A step's entrypoint exits with this code (and prints `ChecksumMismatch: <message>`): the runner of a
    # step in another process (a Kubernetes Job) raises ChecksumMismatch again, so it is not retried either.
    exit_code = 3


class InputTooLarge(LakeError):
    """A raw unit holds more records than the step that reads it takes (it would fill the driver). Not
    retried: the same input fails the same way."""

    exit_code = 4  # as ChecksumMismatch's: a Kubernetes Job's runner raises it again, so it is not retried


# A step's failures that a retry cannot fix, each with the exit code its entrypoint ends with.
NOT_RETRIED: tuple[type[ChecksumMismatch] | type[InputTooLarge] | type[DamagedLakeFile], ...] = (
    ChecksumMismatch,
    InputTooLarge,
    DamagedLakeFile,
)


class RollbackError(VamosJuntosError):
    """A table cannot be rolled back as asked (unknown table, no earlier run, already rolled back)."""


class Terminated(BaseException):
    """The command was sent SIGTERM (a container stop, `kill`, a CI timeout) or SIGINT (Ctrl-C). Not a
    VamosJuntosError: like Prefect's TerminationSignal it is a BaseException, so no `except Exception` on
    the way out swallows or retries it, and the Spark warm-up does not wait for its JVM
    (flows/spark/warmup.py)."""

    def __init__(self, signum: int, advice: str = "run the command again to finish it") -> None:
        self.signum = signum
        super().__init__(f"terminated by {signal.Signals(signum).name}: the command stopped. {advice}")

    @property
    def exit_code(self) -> int:
        """The shell's code for a process ended by this signal."""
        return 128 + self.signum
