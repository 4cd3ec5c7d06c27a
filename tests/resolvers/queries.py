"""GraphQL documents the tests send, as the web client would."""

LIST = """
query List($filter: AppointmentFilter, $first: Int, $after: String, $on: ID) {
  appointments(filter: $filter, first: $first, after: $after, onBehalfOf: $on) {
    totalCount
    pageInfo { hasNextPage endCursor }
    edges { cursor node {
      id title status confirmed start end kind visitKind service cancelledBy canCancel
      organization department practitioner location { name address }
      source { id kind } patient { name }
    } }
    sources { source { id } state message fetchedAt }
  }
}
"""

ONE = """
query One($id: ID!) {
  appointment(id: $id) { id title status source { id } }
  node(id: $id) { id ... on Appointment { title } }
}
"""


def rows(data: dict) -> list[dict]:
    return [edge["node"] for edge in data["appointments"]["edges"]]


def titles(data: dict) -> list[str]:
    return [row["title"] for row in rows(data)]


def consulted(data: dict) -> dict[str, str]:
    return {s["source"]["id"]: s["state"] for s in data["appointments"]["sources"]}
