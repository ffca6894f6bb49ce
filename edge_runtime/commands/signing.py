"""Bundle signatures: ``keys init-signing`` and ``sign`` (workstation, need the convert extra).

The device side (``--trust`` on predict/serve/verify/inspect/sync) needs only ``cryptography``.
"""

from __future__ import annotations

from pathlib import Path

import click

from ._util import require_converters, require_extra


def register(cli: click.Group) -> None:
    cli.add_command(sign)
    keys = cli.commands.get("keys")
    if isinstance(keys, click.Group):
        keys.add_command(init_signing)


@click.command("init-signing")
@click.argument("keys_dir", type=click.Path(file_okay=False))
@click.option("--force", is_flag=True, help="Replace an existing key pair.")
def init_signing(keys_dir: str, force: bool) -> None:
    """Create a model owner's ECDSA P-256 key pair (PEM) for signing bundles."""
    require_converters()
    require_extra("cryptography", "convert")
    from converters.signing import init_signing_key

    priv, pub = init_signing_key(Path(keys_dir), force=force)
    click.echo(f"signing key {priv} (keep it private); devices trust {pub} (--trust / EDGERT_TRUST)")


@click.command()
@click.argument("bundle", type=click.Path(exists=True))
@click.option("--key", required=True, type=click.Path(exists=True, dir_okay=False),
              help="PEM private key (ECDSA P-256/384/521), e.g. from `edgert keys init-signing`.")
def sign(bundle: str, key: str) -> None:
    """Sign BUNDLE (directory or .tar.gz): model.sig covers the manifest and every file
    (OpenSSF model-signing format; `model_signing verify key` verifies it too)."""
    require_converters()
    require_extra("model_signing", "convert")
    from converters.signing import sign_bundle

    out = sign_bundle(bundle, key)
    click.echo(f"signed {bundle}: key {out['key'][:16]}…, {len(out['files'])} files "
               f"({', '.join(out['files'])})")
