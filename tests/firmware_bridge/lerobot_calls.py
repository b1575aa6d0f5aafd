"""The dynamixel-sdk calls LeRobot 0.4.4's `DynamixelMotorsBus` makes, reproduced without LeRobot.

Source: huggingface/lerobot v0.4.4, src/lerobot/motors/motors_bus.py (`_read`, `_write`, `_sync_read`,
`_sync_write`, `set_half_turn_homings`, `reset_calibration`) and motors/dynamixel/dynamixel.py
(`read_calibration`, `write_calibration`, `broadcast_ping`, `_decode_sign`): the plain
`PacketHandler(2.0)`, `GroupSyncRead/GroupSyncWrite(port, handler, 0, 0)` with `start_address` and
`data_length` set per call, `writeTxRx` for single writes, `readNByteTxRx` for single reads, and
two's-complement decoding of the signed registers. Register addresses come from LeRobot's
X_SERIES_CONTROL_TABLE (motors/dynamixel/tables.py), copied here as LeRobot has them.
"""

from __future__ import annotations

import time

from dynamixel_sdk import COMM_SUCCESS, GroupSyncRead, GroupSyncWrite, PacketHandler, PortHandler

# LeRobot 0.4.4 X_SERIES_CONTROL_TABLE entries used below: {name: (address, size)}.
LEROBOT_TABLE = {
    "ID": (7, 1), "Baud_Rate": (8, 1), "Return_Delay_Time": (9, 1), "Drive_Mode": (10, 1),
    "Operating_Mode": (11, 1), "Secondary_ID": (12, 1), "Homing_Offset": (20, 4), "Current_Limit": (38, 2),
    "Acceleration_Limit": (40, 4), "Max_Position_Limit": (48, 4), "Min_Position_Limit": (52, 4),
    "Torque_Enable": (64, 1), "Hardware_Error_Status": (70, 1), "Position_D_Gain": (80, 2),
    "Position_I_Gain": (82, 2), "Position_P_Gain": (84, 2), "Feedforward_2nd_Gain": (88, 2),
    "Feedforward_1st_Gain": (90, 2), "Goal_Current": (102, 2), "Goal_Position": (116, 4), "Moving": (122, 1),
    "Profile_Acceleration": (108, 4), "Profile_Velocity": (112, 4), "Moving_Status": (123, 1), "Present_PWM": (124, 2), "Present_Current": (126, 2),
    "Present_Velocity": (128, 4), "Present_Position": (132, 4), "Velocity_Trajectory": (136, 4),
    "Position_Trajectory": (140, 4), "Present_Temperature": (146, 1),
}
# LeRobot's X_SERIES_ENCODINGS_TABLE: registers decoded as two's complement.
SIGNED = {"Homing_Offset", "Goal_PWM", "Goal_Current", "Goal_Velocity", "Present_PWM", "Present_Current",
          "Present_Velocity", "Present_Position", "Goal_Position"}


class SharingPortHandler(PortHandler):
    """The SDK's PortHandler, except that a read with nothing waiting yields the CPU for 0.2 ms: the SDK spins on
    the port, which in one Python process would starve the emulator's thread of the GIL (a real servo is not in
    the process). Timeouts and every packet stay the SDK's."""

    def readPort(self, length: int) -> bytes:  # noqa: N802 (SDK name)
        data = super().readPort(length)
        if not data:
            time.sleep(0.0002)
        return data


class LeRobotError(RuntimeError):
    """What LeRobot raises: a communication failure or a status packet carrying an error."""

    def __init__(self, what: str, comm: int, error: int) -> None:
        self.comm, self.error = comm, error
        super().__init__(f"{what}: comm={comm} error={error}")


class LeRobotCalls:
    """LeRobot's SDK usage on one port; `motors` maps name -> id as in a LeRobot robot."""

    def __init__(self, port: str, motors: dict[str, int]) -> None:
        self.motors = motors
        self.port = SharingPortHandler(port)
        self.handler = PacketHandler(2.0)
        self.reader = GroupSyncRead(self.port, self.handler, 0, 0)
        self.writer = GroupSyncWrite(self.port, self.handler, 0, 0)
        if not self.port.openPort():
            raise OSError(f"cannot open {port}")
        self.port.setPacketTimeoutMillis(1000)  # LeRobot's set_timeout(DEFAULT_TIMEOUT_MS)

    def close(self) -> None:
        """LeRobot's disconnect without the torque-off writes."""
        self.port.closePort()

    def write(self, name: str, motor: str, value: int, motor_id: int | None = None) -> None:
        """`_write`: writeTxRx with LeRobot's byte split; raises like LeRobot on comm or status errors."""
        address, size = LEROBOT_TABLE[name]
        data = list((value & ((1 << (8 * size)) - 1)).to_bytes(size, "little"))
        comm, error = self.handler.writeTxRx(self.port, self.motors[motor] if motor_id is None else motor_id,
                                             address, size, data)
        if comm != COMM_SUCCESS or error:
            raise LeRobotError(f"write {name} {motor}", comm, error)

    def read(self, name: str, motor: str) -> int:
        """`_read`: readNByteTxRx, then LeRobot's sign decoding."""
        address, size = LEROBOT_TABLE[name]
        fn = {1: self.handler.read1ByteTxRx, 2: self.handler.read2ByteTxRx, 4: self.handler.read4ByteTxRx}[size]
        value, comm, error = fn(self.port, self.motors[motor], address)
        if comm != COMM_SUCCESS or error:
            raise LeRobotError(f"read {name} {motor}", comm, error)
        return _decode(name, value, size)

    def sync_read(self, name: str, motors: list[str] | None = None) -> dict[str, int]:
        """`_sync_read`: GroupSyncRead.txRxPacket, then getData per id."""
        address, size = LEROBOT_TABLE[name]
        names = list(self.motors) if motors is None else motors
        self.reader.clearParam()
        self.reader.start_address, self.reader.data_length = address, size
        for motor in names:
            self.reader.addParam(self.motors[motor])
        comm = self.reader.txRxPacket()
        if comm != COMM_SUCCESS:
            raise LeRobotError(f"sync read {name}", comm, 0)
        return {m: _decode(name, self.reader.getData(self.motors[m], address, size), size) for m in names}

    def sync_write(self, name: str, values: dict[str, int]) -> None:
        """`_sync_write`: GroupSyncWrite.txPacket (no reply)."""
        address, size = LEROBOT_TABLE[name]
        self.writer.clearParam()
        self.writer.start_address, self.writer.data_length = address, size
        for motor, value in values.items():
            self.writer.addParam(self.motors[motor], list((value & ((1 << (8 * size)) - 1)).to_bytes(size, "little")))
        comm = self.writer.txPacket()
        if comm != COMM_SUCCESS:
            raise LeRobotError(f"sync write {name}", comm, 0)

    def broadcast_ping(self) -> dict[int, int]:
        """`broadcast_ping`: {id: model number}."""
        found, comm = self.handler.broadcastPing(self.port)
        if comm != COMM_SUCCESS:
            raise LeRobotError("broadcast ping", comm, 0)
        return {i: data[0] for i, data in found.items()}

    def read_calibration(self) -> dict[str, dict[str, int]]:
        """`DynamixelMotorsBus.read_calibration`: the raw Drive_Mode register is stored as drive_mode."""
        offsets = self.sync_read("Homing_Offset")
        mins, maxes = self.sync_read("Min_Position_Limit"), self.sync_read("Max_Position_Limit")
        drive = self.sync_read("Drive_Mode")
        return {m: {"id": i, "drive_mode": drive[m], "homing_offset": offsets[m], "range_min": mins[m],
                    "range_max": maxes[m]} for m, i in self.motors.items()}

    def set_half_turn_homings(self) -> dict[str, int]:
        """`reset_calibration` then offset = 2047 - Present_Position, written per motor."""
        for motor in self.motors:
            self.write("Homing_Offset", motor, 0)
            self.write("Min_Position_Limit", motor, 0)
            self.write("Max_Position_Limit", motor, 4095)
        present = self.sync_read("Present_Position")
        homings = {m: int(4095 / 2) - p for m, p in present.items()}
        for motor, offset in homings.items():
            self.write("Homing_Offset", motor, offset)
        return homings


def _decode(name: str, value: int, size: int) -> int:
    """LeRobot's decode_twos_complement for the registers in its encodings table."""
    if name in SIGNED and value & (1 << (8 * size - 1)):
        return value - (1 << (8 * size))
    return value


# LeRobot 0.4.4 robots/koch_follower/koch_follower.py: ids, models, and configure()'s register writes.
KOCH_MOTORS = {"shoulder_pan": 1, "shoulder_lift": 2, "elbow_flex": 3, "wrist_flex": 4, "wrist_roll": 5, "gripper": 6}
KOCH_MODELS = {1: "xl430-w250", 2: "xl430-w250", 3: "xl330-m288", 4: "xl330-m288", 5: "xl330-m288",
               6: "xl330-m288"}


def koch_configure(lerobot: LeRobotCalls) -> None:
    """`KochFollower.configure()`: torque off, Return_Delay_Time 0, modes 4 (5 on the gripper), elbow gains, torque on."""
    for motor in lerobot.motors:
        lerobot.write("Torque_Enable", motor, 0)
    for motor in lerobot.motors:
        lerobot.write("Return_Delay_Time", motor, 0)
    for motor in lerobot.motors:
        if motor != "gripper":
            lerobot.write("Operating_Mode", motor, 4)
    lerobot.write("Operating_Mode", "gripper", 5)
    lerobot.write("Position_P_Gain", "elbow_flex", 1500)
    lerobot.write("Position_I_Gain", "elbow_flex", 0)
    lerobot.write("Position_D_Gain", "elbow_flex", 600)
    for motor in lerobot.motors:
        lerobot.write("Torque_Enable", motor, 1)
