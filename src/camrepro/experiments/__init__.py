"""The experiments wing: one contract (:mod:`.chapter`, typed parameters in :mod:`.schema`), the plumbing every
chapter shares (:mod:`.kit`), one package per chapter (params ← compute ← tables ← claims) and the registry
(:mod:`.registry`) through which the CLI, the report and the notebooks find them. Notebooks only load a
chapter, show its tables and figures, and explain them."""
