"""Errors a user sees. Each says what is wrong and how to fix it."""


class DreamWaltzError(Exception):
    """Base of every user-facing error: ``str(err)`` is the message, ``err.hint`` the fix."""

    code = "error"

    def __init__(self, message: str, hint: str = ""):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} {self.hint}".strip() if self.hint else self.message

    def to_dict(self) -> dict:
        return {"code": self.code, "message": self.message, "hint": self.hint}


class InvalidFileError(DreamWaltzError):
    """A user file (.h3ga, motion, body model) is corrupt, hostile or of the wrong kind."""

    code = "invalid_file"


class BodyModelError(DreamWaltzError):
    code = "body_model"


class MotionError(DreamWaltzError):
    code = "motion"


class WeightsMissingError(DreamWaltzError):
    code = "weights_missing"


class JobCancelled(DreamWaltzError):
    code = "cancelled"

    def __init__(self, message: str = "The job was cancelled.", hint: str = ""):
        super().__init__(message, hint)


class OutOfMemoryError(DreamWaltzError):
    code = "out_of_memory"


class TrackError(DreamWaltzError):
    """A motion-capture track of a video (docs/REENACT.md) is unreadable, unsafe or does not fit."""

    code = "track"
