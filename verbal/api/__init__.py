"""HTTP front doors: thin routes that parse, authenticate and call the layers below."""
