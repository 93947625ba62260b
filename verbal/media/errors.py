"""What goes wrong with media, as values the voice layer can report.

    MediaError(code, message)
      code "ports_exhausted"     every port of the RTP range is in use
      code "tts_failed"          espeak-ng failed, was not found, or took too long
      code "audio_unsupported"   audio in a format that is not decoded (or not audio at all)
      code "audio_too_large"     audio beyond the size or duration limits
      code "audio_failed"        sox failed to decode it, or took too long
      code "closed"              the RTP session closed before the digits were sent

Bad RTP from the network is never an exception: it is counted and dropped
(`SessionStats`), so a hostile peer cannot end a call or the process.
"""

from __future__ import annotations

__all__ = ["MediaError"]

# Where a user reads about each code: the "Media" section of the voice docs.
MORE_INFO = "docs/voice.md#media-errors"


class MediaError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    @property
    def more_info(self) -> str:
        return MORE_INFO
