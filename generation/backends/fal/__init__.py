"""The fal.ai queue backend for FLUX.2 (docs/providers.md §2).

Protocol in short: `POST {base}/{model_id}[/edit]` with `Authorization: Key <key>` answers at once
with `request_id` and three URLs: `status_url`, `response_url`, `cancel_url`. `GET status_url`
answers `IN_QUEUE`, `IN_PROGRESS` or `COMPLETED`; a model failure *also* ends as `COMPLETED`, and
the error only shows when the result is fetched (`GET response_url` answers 4xx/5xx with a
`detail` body). So poll() makes one call while the request is pending and a second one, for the
result, once it is completed. Cancel is `PUT cancel_url`.

Configuration (`BackendConfig`; without a workspace account, from the settings in brackets):
    api_key     the fal key [FAL_KEY]; "KEY_ID:KEY_SECRET" keys go in the same header unchanged
    base_url    the queue host, default https://queue.fal.run [FAL_QUEUE_URL]
    extra       "allowed_hosts": comma-separated hosts trusted besides fal's own, for the queue
                    URLs fal hands back, result downloads and the webhook JWKS (tests: the fake
                    server's "127.0.0.1,localhost"); same rules as download.HostPolicy.
                "jwks_url": where fal publishes its webhook signing keys (default JWKS_URL)
                    [FAL_JWKS_URL].
                "jwks_ttl": seconds to cache those keys (default one day).
                "connect_timeout", "read_timeout", "fetch_timeout" (seconds), "max_result_bytes".

Decisions worth knowing:
    - The URLs from the submit answer are used as given. The engine keeps only `poll_url`, so
      poll_url is the `status_url`; the response URL is the `response_url` that every status
      answer repeats, and only when an answer lacks it is it derived by dropping "/status"
      (docs/providers.md §2.3's path table: status, result and cancel share `/{app}/requests/{id}`).
      cancel() derives the cancel URL the same way. All three also stay in Submission.raw.
    - References go as `data:` URIs in `image_urls`: our references are private files with no URL
      fal could fetch. docs/providers.md does not state that fal's FLUX.2 edit endpoints take data
      URIs (fal's CDN page says "some models" do); if one refuses them, the fix is to upload to
      fal's storage first, which this module does not do yet.
    - The size always goes as `image_size: {width, height}`: the enum presets' pixel sizes are
      unconfirmed, and the studio must get the exact size it asked for.
    - Megapixels are 1024×1024 px, rounded up per image, input and output (fal's own example:
      1920×1080 = 2 MP). Klein prices are not on fal's pages in docs/providers.md; they mirror BFL's
      (1.12) until confirmed. fal reports no cost, so the estimate is all we have.
    - Webhooks are verified with Ed25519 against fal's JWKS (docs/providers.md §2.7); the per-request
      webhook secret plays no part (fal signs with its own key).
"""
