"""The local review page (`cos-scanner review`): the aiohttp app (`app`), thumbnails
(`thumbs`) and the page itself (`static/`)."""
