"""The audit services behind one backend (`backend`: the service profile and the backend
protocol): what is audited and how (`policy`), CI batch image auditing (`codec`, `client`), the
single-image API (`single`), IMS ImageModeration (`ims`, `ims_codec`), and stored answers for
display (`raw`)."""
