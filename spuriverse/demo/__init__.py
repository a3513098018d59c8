"""Demo scaffolding, the top library layer: tiny random-weight models (`tiny_models`, `tiny_diffusion`),
the curation demo's assets (`assets`) and scripted judge server (`judge_server`), and the offline
`spuriverse demo` (`offline`). Nothing below this package may import it; only the CLI does."""
