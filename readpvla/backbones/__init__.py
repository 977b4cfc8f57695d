"""The frozen models adapters go into, and the offline pretrained text encoder."""
