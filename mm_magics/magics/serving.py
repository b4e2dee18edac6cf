"""Deployment: %mm_deploy, %mm_promote, %mm_abort, %mm_image, %mm_undeploy, %mm_deployments, %mm_token, %mm_predict.

A mixin of :class:`mm_magics.magics.MMMagics` (one configurable, so ``%config MMMagics.*`` keeps working),
as IPython splits its own magics by topic; each magic parses its line, calls one engine verb, returns a record."""

from __future__ import annotations

from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import line_magic

from ..engine.specs import parse_spec
from ..verbs import deploy_options
from .common import friendly, parse_args, verb_arguments

# Everything heavy (scikit-learn, skops, pandas, git) is imported inside the magics that need it, so that
# `%load_ext mm_magics` stays instant and a notebook that never trains pays nothing.


class Secret(str):
    """A string that works as itself (f-strings, headers) but never shows its value in an output or a repr."""

    def __repr__(self) -> str:
        return "'********' (the workspace token: use it in a header, it is masked here)"

    def _repr_html_(self) -> str:
        return "<code>********</code> (the workspace token: use it in a header; masked so the notebook never saves it)"


class ServingMagics:
    """Deployment magics (mixed into MMMagics)."""

    @property
    def deployer(self) -> Any:
        return self.ws.deployments

    @verb_arguments("deploy")
    @line_magic
    @friendly
    def mm_deploy(self, line: str) -> Any:
        """Serve a version over HTTP (Open Inference Protocol V2 and MLflow /invocations).

        The version first enters the deploy stage through its gates; a refused gate refuses the deployment.
        Deploying another version of an already deployed model switches it without dropping a request.
        """
        args = parse_args(self.mm_deploy, line)
        return self.deployer.deploy(args.version, **deploy_options(args))

    @verb_arguments("promote")
    @line_magic
    @friendly
    def mm_promote(self, line: str) -> Any:
        """Make the canary or shadow of a deployed model its served version (no request fails; audited)."""
        args = parse_args(self.mm_promote, line)
        return self.deployer.promote(parse_spec(args.name).name, reason=args.message, force=args.force)

    @verb_arguments("abort")
    @line_magic
    @friendly
    def mm_abort(self, line: str) -> Any:
        """Drop the canary or shadow of a deployed model; the served version answers everything again."""
        args = parse_args(self.mm_abort, line)
        return self.deployer.abort(parse_spec(args.name).name, reason=args.message)

    @verb_arguments("image")
    @line_magic
    @friendly
    def mm_image(self, line: str) -> Any:
        """Build a version's image and, with --push, push it to an OCI registry (the Docker engine's credentials).

        The image is the one a Docker deploy runs; it also serves standalone (docker run -p 8000:8000 IMAGE) and
        carries the version, its artifact's sha256 and the workspace commit as OCI labels.
        """
        args = parse_args(self.mm_image, line)
        return self.deployer.image(args.version, push=args.push)

    @verb_arguments("undeploy")
    @line_magic
    @friendly
    def mm_undeploy(self, line: str) -> Any:
        """Stop a model's server (process or container) and forget its deployment record."""
        args = parse_args(self.mm_undeploy, line)
        return self.deployer.undeploy(parse_spec(args.name).name)

    @line_magic
    @friendly
    def mm_deployments(self, line: str = "") -> Any:
        """Every deployment with its version, URL and live status (stale when its process is gone)."""
        from ..engine.serving.deployments import DeploymentList

        return DeploymentList(self.deployer.list())

    @line_magic
    @friendly
    def mm_token(self, line: str = "") -> Any:
        """The workspace's bearer token for clients of a Docker deployment or a server off loopback.

        A secret: assign it (`token = %mm_token`) and send `Authorization: Bearer {token}`; shown on its own, it
        is masked so a saved notebook never holds it.
        """
        if line.strip():
            raise UsageError("%mm_token takes no arguments: token = %mm_token")
        return Secret(self.deployer.secret("token"))

    @verb_arguments("predict")
    @line_magic
    @friendly
    def mm_predict(self, line: str) -> Any:
        """Send rows through the deployed endpoint and show predictions with the latency split."""
        args = parse_args(self.mm_predict, line)
        data = self._eval(" ".join(args.data))
        outputs = ("predict", "predict_proba") if args.proba else ("predict",)
        name = parse_spec(args.name).name
        prediction = self.deployer.predict(name, data, outputs=outputs)
        self._last_predictions[name] = prediction
        return prediction
