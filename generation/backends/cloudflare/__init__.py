"""The Cloudflare Workers AI backend (docs/providers.md §4).

Protocol in short: `POST {base}/accounts/{account_id}/ai/run/@cf/black-forest-labs/flux-2-dev` with
`Authorization: Bearer <token>` and a **multipart/form-data** body (even for a prompt-only call)
answers synchronously with the image as base64, wrapped in Cloudflare's v4 envelope
`{"result": {"image": "..."}, "success": true, "errors": [], "messages": []}`. Errors come back in the
same envelope with `"success": false, "errors": [{"code": ..., "message": ...}]`. There is no task id,
no polling, no webhook and no cancel: `submit()` returns the finished image.

BFL models that Cloudflare proxies (`black-forest-labs/flux-2-flex`, `…/flux-2-pro-preview`,
docs/providers.md §4.4) take another shape: `POST {base}/accounts/{account_id}/ai/run` with JSON
`{"model": ..., "input": {...}}`, answering `{"state": "Completed", "result": {"image": "<URL>"}}`.
The image is a URL there, downloaded by `fetch()` from BFL's delivery hosts.

Configuration (`BackendConfig`; without a workspace account, from the settings in brackets):
    api_key     the API token (CLOUDFLARE_API_TOKEN)
    base_url    default https://api.cloudflare.com/client/v4 (CLOUDFLARE_API_URL)
    extra       "account_id" (CLOUDFLARE_ACCOUNT_ID);
                "allowed_hosts": comma-separated extra hosts trusted for proxied-model result
                    downloads (".domain" matches subdomains); the base URL's host is always trusted;
                "connect_timeout", "read_timeout" (seconds; generation happens inside the call,
                    so the read timeout is long), "fetch_timeout".

Decisions worth knowing:
    - References larger than 512×512 are downscaled to fit (aspect kept, PNG) rather than refused:
      docs/providers.md gives 512×512 per `input_image_N`, the studio's cleaned references are usually
      larger, and refusing would make every edit impossible here. FLUX.2 encodes references at
      reduced resolution anyway; other backends still get the full-size file.
    - Sizes: 256–1920 px per side (docs/providers.md). docs/providers.md gives no dimension step for
      Cloudflare; we require multiples of 16 like every other FLUX.2 door (the latent grid is 16 px),
      so a request is never silently resized.
    - [dev] always gets an explicit `steps` (25, the documented example, when the request has none):
      Cloudflare bills [dev] per step, so the estimate must know the step count that is sent.
      [klein] takes no `steps` (fixed at 4, "steps ignored") and no `guidance` (distilled models).
    - Pricing (USD): [dev] $0.00021 per input 512×512 tile per step + $0.00041 per output tile per
      step; [klein] 4B $0.000059 per input tile + $0.000287 per output tile (docs/providers.md §4.1).
      Tiles are counted as ceil(w/512) × ceil(h/512), an upper bound (Cloudflare does not say how
      partial tiles are counted). [klein] 9B is not priced in docs/providers.md; Cloudflare's pricing page
      (stored copy, 2026-08) gives BFL's 9B list price, $0.015 first MP + $0.002 per further MP +
      $0.002 per input MP, which we use (MP = 1024×1024 px, rounded up per image, as in bfl.py).
      Proxied models are priced "only in the dashboard"; we use BFL's list prices (docs/providers.md
      1.12) as the estimate. Cloudflare reports no cost per call, so the estimate is all we know.
    - Proxied models take references as URLs only; ours are private files, so they serve text to
      image only (max_references 0).
    - Error mapping: 401/403 (and Cloudflare code 10000) auth; 402 and "free allocation"
      exhaustion (code 4006, seen in the wild, unconfirmed) quota; 429 rate limited with
      Retry-After; 5xx retryable; other 4xx invalid request with Cloudflare's message. Workers AI
      documents no moderation error for FLUX.2: a 4xx whose message speaks of NSFW/moderation/safety
      is classed as moderated (our assumption, unconfirmed).
"""
