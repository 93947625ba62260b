"""Audio for calls: G.711, RTP sessions on a shared 20 ms clock, DTMF, prompts (TTS, WAV, URLs)."""
