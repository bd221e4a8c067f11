"""The released TempoMaster 14B model set outside ComfyUI: DiT + umT5-XXL text encoder + Wan 2.1 VAE.

* :mod:`.latents` -- the Wan 2.1 latent layout and normalisation (torch only; the ComfyUI VAE adapter uses it);
* :mod:`.extra` -- the optional ``wan`` extra (``pip install "tempomaster[wan]"``: transformers, diffusers,
  sentencepiece, ftfy) and its check;
* :mod:`.files` -- which file is which: the usual file names and folders, the kind of a checkpoint read from
  its key names (no weights read);
* :mod:`.text_encoder` -- umT5-XXL on transformers' ``UMT5EncoderModel`` from ComfyUI's or the reference's file,
  the tokenizer, and the prompt embedding the reference feeds the DiT;
* :mod:`.vae` -- the Wan 2.1 VAE on diffusers' ``AutoencoderKLWan`` from either file, as a
  :class:`~tempomaster_core.protocols.VideoCodec`;
* :mod:`.bundle` -- the loaded set with the interface of the built-in bundle (``model``, ``codec``,
  ``encode_prompt``, ``defaults``), what ``python -m tempomaster_core generate --model-dir DIR`` runs.

Only :mod:`.text_encoder`, :mod:`.vae` and :mod:`.bundle` need the extra, and they import it when a model is
built, so importing this package never needs it. The configurations of both libraries' models are shipped
as JSON files next to this module (``umt5_xxl_encoder.json``, ``wan21_vae.json``): nothing is fetched from a
model hub at run time.
"""
