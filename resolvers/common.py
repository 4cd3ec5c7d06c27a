"""What every domain's GraphQL types share: the Node interface and page info."""

from __future__ import annotations

import strawberry


@strawberry.interface(description="An object that can be fetched again by its id with `node(id:)`.")
class Node:
    id: strawberry.ID = strawberry.field(description="Opaque, stable identifier.")


@strawberry.type(description="Pagination state.")
class PageInfo:
    has_next_page: bool = strawberry.field(description="More rows follow this page.")
    end_cursor: str | None = strawberry.field(description="Cursor of the last row of this page.")
