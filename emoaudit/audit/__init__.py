"""The audit: options, the run that resumes, its stages and the results document."""
