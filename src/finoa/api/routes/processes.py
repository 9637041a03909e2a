"""Process definitions (流程定义): deploy BPMN 2.0 + DMN, list the versions, export one.
Scopes `processes:read` and `processes:manage`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Response, status
from pydantic import BaseModel, Field
from starlette.datastructures import UploadFile

from finoa.api.deps import HubDep, require
from finoa.api.json_body import StrictJsonRoute
from finoa.api.problems import ApiProblem, problem_responses
from finoa.security.tokens import Principal
from finoa.services.processes import (
    ProcessOut,
    deploy_process,
    export_process,
    list_processes,
)

router = APIRouter(
    prefix="/processes",
    tags=["processes"],
    route_class=StrictJsonRoute,
    responses=problem_responses(401, 403, 422),
)
Reader = Annotated[Principal, Depends(require("processes:read"))]
Manager = Annotated[Principal, Depends(require("processes:manage"))]
ProcessKey = Annotated[
    str,
    Path(max_length=64, pattern=r"^[A-Za-z_][A-Za-z0-9_.-]*$", description="the process key"),
]
XML_TYPES = ("application/xml", "text/xml", "application/bpmn+xml")
MAX_FILES = 2


class DeployOut(BaseModel):
    process_key: str = Field(title="流程标识")
    version: int = Field(title="版本")
    spec_version: str = Field(title="定义摘要")
    created: bool = Field(description="false when these bytes were deployed already")


async def _files(request: Request) -> list[tuple[str, bytes]]:
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind in XML_TYPES:
        return [("body.bpmn", await request.body())]
    if kind == "multipart/form-data":
        form = await request.form(max_files=MAX_FILES, max_fields=MAX_FILES)
        files = [
            (value.filename or name, await value.read())
            for name, value in form.multi_items()
            if isinstance(value, UploadFile)
        ]
        if files:
            return files
        raise ApiProblem(
            422,
            "No definition",
            "files: send the BPMN file (and at most one DMN file) as form files",
            kind="validation",
            field="files",
        )
    raise ApiProblem(
        422,
        "Unsupported content type",
        "content-type: send application/xml (a BPMN file) or multipart/form-data",
        kind="validation",
        field="content-type",
    )


@router.post(
    "",
    summary="Deploy a process definition (BPMN 2.0, optionally with its DMN)",
    description="The body is a BPMN file (`application/xml`), or `multipart/form-data` with "
    "the BPMN file and at most one DMN file. Everything is checked before anything is "
    "stored; a refused definition names each element and its line in `errors`. A changed "
    "definition is a new version; the same bytes again answer 200 with the version they "
    "are. New documents start on the latest version; running ones keep theirs.",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/xml": {"schema": {"type": "string"}},
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "properties": {
                            "files": {
                                "type": "array",
                                "items": {"type": "string", "format": "binary"},
                            }
                        },
                    }
                },
            },
        }
    },
    status_code=status.HTTP_201_CREATED,
    responses={200: {"model": DeployOut, "description": "these bytes were deployed already"}},
)
async def post_process(request: Request, response: Response, hub: HubDep, p: Manager) -> DeployOut:
    files = await _files(request)
    result = await hub.db.run(deploy_process, hub.db, files, actor=f"client:{p.client_id}")
    if not result.created:
        response.status_code = status.HTTP_200_OK
    return DeployOut(
        process_key=result.process_key,
        version=result.version,
        spec_version=result.spec_version,
        created=result.created,
    )


@router.get("", summary="Process definitions: the shipped defaults and every deployed version")
async def get_processes(hub: HubDep, _: Reader) -> list[ProcessOut]:
    return await hub.db.run(list_processes, hub.db)


@router.get(
    "/{process_key}/bpmn",
    summary="Export a process's BPMN (the latest version, or ?version=N; 0: the shipped one)",
    response_class=Response,
    responses={
        200: {"content": {"application/xml": {"schema": {"type": "string"}}}},
        **problem_responses(404),
    },
)
async def get_bpmn(
    process_key: ProcessKey,
    hub: HubDep,
    _: Reader,
    version: Annotated[int | None, Query(ge=0, le=1_000_000)] = None,
) -> Response:
    found, bpmn, _dmn = await hub.db.run(export_process, hub.db, process_key, version)
    return Response(
        bpmn.encode("utf-8"),
        media_type="application/xml",
        headers={"X-Process-Version": str(found)},
    )


@router.get(
    "/{process_key}/dmn",
    summary="Export the DMN decisions a process version uses",
    response_class=Response,
    responses={
        200: {"content": {"application/xml": {"schema": {"type": "string"}}}},
        **problem_responses(404),
    },
)
async def get_dmn(
    process_key: ProcessKey,
    hub: HubDep,
    _: Reader,
    version: Annotated[int | None, Query(ge=0, le=1_000_000)] = None,
) -> Response:
    found, _bpmn, dmn = await hub.db.run(export_process, hub.db, process_key, version)
    return Response(
        dmn.encode("utf-8"),
        media_type="application/xml",
        headers={"X-Process-Version": str(found)},
    )
