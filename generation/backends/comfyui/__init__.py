"""The self-hosted ComfyUI backend (docs/providers.md §5).

Protocol in short: references go up first with `POST /upload/image` (multipart); then `POST /prompt
{"prompt": <API-format graph>, "client_id", "prompt_id"}` queues the project's FLUX.2 workflow
(comfyui/workflows/*.json) and answers `{"prompt_id", "number", "node_errors"}` (a graph that fails
validation: 400 with `error` and `node_errors`). `GET /history/{prompt_id}` is `{}` until the prompt
finished, then holds its status (`success` / `error`, with `execution_error` or
`execution_interrupted` among the messages) and its output images, which `GET /view?filename=
&subfolder=&type=` serves. `POST /queue {"delete": [id]}` drops a queued prompt, `POST /interrupt`
stops the running one.

Progress is followed through the history endpoint, not the websocket: the engine never blocks
(submit returns, then poll() is called on a schedule), and a websocket only helps a client that
stays connected while the prompt runs. Reading `/history/{id}` (and `/queue` while that is empty)
in each poll fits that model, needs no extra dependency and survives worker restarts; the cost is
no per-step progress (the queue position is reported instead).

Configuration (`BackendConfig`):
    base_url    the server, e.g. http://gpu-box:8188 (falls back to COMFYUI_URL); a path prefix
                (reverse proxy, or ComfyUI's `/api`) is kept
    api_key     optional: sent as `Authorization: Bearer` (ComfyUI has no auth; a proxy may)
    extra       "username" / "password": HTTP basic auth instead of the bearer token;
                "price_per_image": USD per image for routing (default 0; COMFYUI_PRICE_PER_IMAGE);
                "workflow_dir": a folder whose flux2_dev.json / flux2_klein.json replace the shipped
                    ones (other model file names, samplers...; COMFYUI_WORKFLOW_DIR);
                "client_id"; "connect_timeout", "read_timeout", "fetch_timeout" (seconds).

Decisions worth knowing:
    - The shipped graphs are text-to-image; the backend inserts one LoadImage →
      ImageScaleToTotalPixels (1 MP) → VAEEncode → ReferenceLatent chain per reference, each
      ReferenceLatent taking the previous one's conditioning, the last feeding the guider
      (docs/providers.md §5.3). Nodes are found by class_type, so a replacement workflow only needs one
      CLIPTextEncode, RandomNoise, EmptyFlux2LatentImage, Flux2Scheduler, VAELoader, SaveImage and a
      BasicGuider or CFGGuider.
    - References are uploaded under content-addressed names (`flux-studio/ref-<sha256>.png`):
      ComfyUI keeps an identical file's name, so a retried submit re-uses the upload.
    - A missing seed is drawn here, because RandomNoise needs one; the seed used is read back from
      the history's graph.
    - An interrupted prompt is FAILED with details {"canceled": True}; an execution error is
      FAILED, retryable only for out-of-memory errors.
    - A prompt in neither the history nor the queue is FAILED/NOT_FOUND (the server restarted:
      ComfyUI keeps both in memory only).
"""
