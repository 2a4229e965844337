"""vjpify's source transformer: lowers flax.linen grad and value_and_grad
call sites in Module definitions to explicit nn.vjp code.

It needs only libcst; it never imports jax or flax.
"""

from vjpify.transformer.api import TransformError, TransformResult, could_contain_sites, transform_source
from vjpify.transformer.command import LowerGradToVjp
from vjpify.transformer.diagnostics import Site

__all__ = ['LowerGradToVjp', 'Site', 'TransformError', 'TransformResult', 'could_contain_sites', 'transform_source']
