"""Multi-scale colour decoder: learnable colour queries refined by a transformer decoder.

Each of the ``dec_layers`` layers attends (cross-attention, then self-attention, then an FFN,
all post-norm) to one of three pixel-decoder scales in turn. The resulting colour embeddings
are dotted with the full-resolution image features by the fused colour head (color_head.py).
Tensors inside the transformer are sequence-first (L, B, C), as in the official model. The
cross-attention reads each scale in bands of pixel rows (banded_attention.py), so no
pixels x 256 memory, key or value map is ever stored.
"""
import torch.nn as nn
import torch.nn.functional as F

from .banded_attention import AttentionSource, banded_cross_attention
from .position_encoding import sine_position_axes


class CrossAttentionLayer(nn.Module):
    def __init__(self, d_model, nhead):
        super().__init__()
        self.multihead_attn = nn.MultiheadAttention(d_model, nhead, dropout=0.0)  # holds the weights
        self.norm = nn.LayerNorm(d_model)

    def forward(self, queries, source, query_pos):
        """source: the scale's AttentionSource (keys: memory + position, values: memory)."""
        attended = banded_cross_attention(queries + query_pos, source, self.multihead_attn)
        return self.norm(queries + attended)


class SelfAttentionLayer(nn.Module):
    def __init__(self, d_model, nhead):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(d_model, nhead, dropout=0.0)
        self.norm = nn.LayerNorm(d_model)

    def forward(self, queries, query_pos):
        q = queries + query_pos
        attended = self.self_attn(q, q, value=queries, need_weights=False)[0]
        return self.norm(queries + attended)


class FFNLayer(nn.Module):
    def __init__(self, d_model, dim_feedforward):
        super().__init__()
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.norm = nn.LayerNorm(d_model)

    def forward(self, x):
        return self.norm(x + self.linear2(F.relu(self.linear1(x))))


class MLP(nn.Module):
    """Linear layers with ReLU between them (none after the last)."""

    def __init__(self, dim, num_layers):
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(dim, dim) for _ in range(num_layers))

    def forward(self, x):
        for layer in self.layers[:-1]:
            x = F.relu(layer(x))
        return self.layers[-1](x)


class MultiScaleColorDecoder(nn.Module):
    def __init__(self, in_channels, num_queries=100, num_scales=3, dec_layers=9,
                 hidden_dim=256, nheads=8, dim_feedforward=2048):
        super().__init__()
        self.num_scales = num_scales
        # Creation order matches the official state-dict order.
        self.query_feat = nn.Embedding(num_queries, hidden_dim)
        self.query_embed = nn.Embedding(num_queries, hidden_dim)
        self.level_embed = nn.Embedding(num_scales, hidden_dim)
        self.input_proj = nn.ModuleList(nn.Conv2d(c, hidden_dim, kernel_size=1) for c in in_channels)
        self.transformer_self_attention_layers = nn.ModuleList(
            SelfAttentionLayer(hidden_dim, nheads) for _ in range(dec_layers))
        self.transformer_cross_attention_layers = nn.ModuleList(
            CrossAttentionLayer(hidden_dim, nheads) for _ in range(dec_layers))
        self.transformer_ffn_layers = nn.ModuleList(
            FFNLayer(hidden_dim, dim_feedforward) for _ in range(dec_layers))
        self.decoder_norm = nn.LayerNorm(hidden_dim)
        self.color_embed = MLP(hidden_dim, 3)

    def attention_source(self, level, feature):
        """The scale's AttentionSource. Where the 1x1 input projection does not widen the map
        (stride 4: 256 -> 256 channels) the attention folds it in and reads the feature itself;
        elsewhere (512 channels) the projected memory is computed once and read."""
        proj = self.input_proj[level]
        bias = proj.bias + self.level_embed.weight[level]
        height, width = feature.shape[-2:]
        pos_y, pos_x = sine_position_axes(height, width, self.query_feat.embedding_dim // 2,
                                          device=feature.device, dtype=feature.dtype)
        if proj.in_channels <= proj.out_channels:
            return AttentionSource(feature, proj.weight[:, :, 0, 0], bias, pos_y, pos_x)
        return AttentionSource(F.conv2d(feature, proj.weight, bias), None, None, pos_y, pos_x)

    def forward(self, scales, batch):
        """scales: a list of ``num_scales`` NCHW maps (coarse to fine), emptied as it is read
        (the 512-channel maps die once projected); returns the colour embeddings (B, Q, C).
        Their dot product with the image features is taken by the fused colour head."""
        sources = []
        for level in range(len(scales)):
            sources.append(self.attention_source(level, scales[level]))
            scales[level] = None

        query_pos = self.query_embed.weight.unsqueeze(1).expand(-1, batch, -1)
        queries = self.query_feat.weight.unsqueeze(1).expand(-1, batch, -1)
        for i, (cross, self_attn, ffn) in enumerate(zip(self.transformer_cross_attention_layers,
                                                        self.transformer_self_attention_layers,
                                                        self.transformer_ffn_layers)):
            level = i % self.num_scales
            queries = cross(queries, sources[level], query_pos)
            queries = self_attn(queries, query_pos)
            queries = ffn(queries)

        return self.color_embed(self.decoder_norm(queries).transpose(0, 1))  # (B, Q, C)
