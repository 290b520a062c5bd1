"""The audit pipeline: options, the run that resumes, its stages and the steering command's session.

The Python API's `emoaudit.audit(...)` (in `emoaudit.api`) runs `pipeline.run.audit`.
"""
