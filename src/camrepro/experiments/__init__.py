"""One module per chapter: ``run(params, device)`` computes everything (cached on disk) and returns tidy tables;
``claims(params)`` gives the chapter's rows of the reproducibility report. Notebooks only load and plot."""
