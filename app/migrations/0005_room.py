from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from json import dumps, loads
from tortoise.fields.base import OnDelete
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('encore', '0004_confirmation_step')]

    initial = False

    operations = [
        ops.CreateModel(
            name='RoomRestriction',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('session', fields.ForeignKeyField('encore.WebinarSession', source_field='session_id', db_constraint=True, to_field='id', related_name='restrictions', on_delete=OnDelete.CASCADE)),
                ('registrant', fields.ForeignKeyField('encore.Registrant', source_field='registrant_id', db_constraint=True, to_field='id', related_name='restrictions', on_delete=OnDelete.CASCADE)),
                ('kind', fields.CharField(max_length=8)),
                ('staff', fields.ForeignKeyField('encore.StaffUser', source_field='staff_id', null=True, db_constraint=True, to_field='id', related_name='restrictions', on_delete=OnDelete.SET_NULL)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'room_restriction', 'app': 'encore', 'unique_together': (('session', 'registrant'),), 'pk_attr': 'id', 'table_description': 'A muted or banned attendee of one session (banned: may not enter the room again).'},
            bases=['Model'],
        ),
        ops.AddField(
            model_name='ChatMessage',
            name='emailed_at',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
        ops.AddField(
            model_name='ChatMessage',
            name='automatic',
            field=fields.BooleanField(default=False),
        ),
        ops.AddField(
            model_name='ChatMessage',
            name='read_at',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
        ops.AddField(
            model_name='ChatMessage',
            name='pinned',
            field=fields.BooleanField(default=False),
        ),
        ops.AddField(
            model_name='ChatMessage',
            name='sender_name',
            field=fields.CharField(default='', max_length=120),
        ),
        ops.AddField(
            model_name='Interaction',
            name='position',
            field=fields.IntField(default=0),
        ),
        ops.AddField(
            model_name='Interaction',
            name='session',
            field=fields.ForeignKeyField('encore.WebinarSession', source_field='session_id', null=True, db_constraint=True, to_field='id', related_name='pushed_interactions', on_delete=OnDelete.CASCADE),
        ),
        ops.AddField(
            model_name='Webinar',
            name='room',
            field=fields.JSONField(default=dict, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads),
        ),
    ]
