from aiworker_local.infra import free_port, port_open

__all__ = ["free_port", "port_open"]
