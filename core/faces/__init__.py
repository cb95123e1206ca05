"""The library's faces for programs and shells: the command line (:mod:`.cli`) and the REST API (:mod:`.api`)."""
