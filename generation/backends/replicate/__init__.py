"""The Replicate predictions backend for Black Forest Labs' FLUX.2 models (docs/providers.md §3).

Protocol in short: `POST {base}/v1/models/black-forest-labs/{name}/predictions` with
`Authorization: Bearer <token>` and `{"input": {...}}` answers a prediction at once (we never send
`Prefer: wait`: no call may block on the model). `GET urls.get` answers its status: `starting`,
`processing`, then `succeeded` (output: one URL string for pro/max/flex/dev, a list of URLs for
klein), `failed` (with `error`), `canceled` or `aborted`. Cancel is `POST urls.cancel`.

Configuration (`BackendConfig`; without a workspace account, from the settings in brackets):
    api_key     the API token [REPLICATE_API_TOKEN]
    base_url    default https://api.replicate.com, with or without "/v1" [REPLICATE_API_URL]
    extra       "allowed_hosts": comma-separated hosts trusted besides Replicate's own, for the
                    prediction URLs it hands back and result downloads (tests: the fake server's
                    "127.0.0.1,localhost"); same rules as download.HostPolicy.
                "webhook_secret": the account's `whsec_…` signing secret [REPLICATE_WEBHOOK_SECRET];
                    without it parse_webhook asks `GET /v1/webhooks/default/secret` once.
                "connect_timeout", "read_timeout", "fetch_timeout" (seconds), "max_result_bytes".

Decisions worth knowing:
    - Input names differ per model (docs/providers.md §3.3): pro/max/flex/dev take `input_images`,
      klein takes `images`; `build_input` writes each model's own fields.
    - Sizes: pro/max/flex/dev get `aspect_ratio: "custom"` with `width`/`height`. Replicate
      *rounds* those to a step (32 on pro, flex and dev, 16 on max); the studio must get exactly the
      size it asked for, so a size that is not already a multiple is refused, naming the nearest
      ones. flex's step is 16 or 32 depending on the version; 32 is exact on both. klein has no
      pixel size at all, only an aspect ratio and `output_megapixels` whose rounding is not
      documented: the one size it is taken to produce exactly is 1024×1024 (1:1 at the default
      1 MP); every other size is refused with that reason.
    - References go as `data:` URIs (documented as accepted for file inputs).
    - Prices are not published for these models in docs/providers.md (3.6, unconfirmed): estimates
      mirror BFL's (1.12) per 1024×1024-px megapixel rounded up per image; [dev] uses fal's
      ≈ $0.012/MP. Replicate reports no cost per prediction.
    - Webhooks follow the Standard Webhooks scheme Replicate documents (3.4).
"""
