"""Voice: streaming text-to-speech on an embedded eSpeak NG engine (or an OpenAI-compatible
speech server), and speaking an agent run's answer while it is written. See docs/voice.md."""
