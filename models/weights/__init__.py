"""Reading weight files of every format users have (safetensors, .pth/.bin, sharded checkpoints,
GGUF), with their quantisation (fp8, scaled fp8, ComfyUI's quantised layout, GGUF blocks), for
the DiT, the encoders and the audio encoder alike: one reader for the whole pack."""
